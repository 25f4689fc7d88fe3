"""The dialer bench over the broker: the real dialer worker, fed and watched through the topics.

A fresh embedded broker (Tansu) carries everything. The bench publishes the agent versions
(voice.agents.events.v1) before the worker starts, so its rebuild reads them, then the PlaceCall
requests (voice.dialer.requests.v1). The worker (``python -m streams.dialer``) dials the fake
Twilio API in its child process; the fake's status callbacks reach a sink here, which publishes
on voice.calls.events.v1 what the edge and the calls worker would derive from them
(TelephonyStatusChanged in-progress, CallEnded); the calls worker itself is left out. Live calls
are folded from the dialer's own events (voice.dialer.events.v1). That topic gets one partition
here: its records are keyed by agent, and only one partition gives the tenant's attempts and
completions in the order they were decided. One warm-up call waits out the worker's start and
group join before the clock starts.

Besides placements/s and the peaks it reports the mean time between the stages of a call (see
``_Stages``) and the CPU milliseconds per placement of each process (``<role>_cpu_ms``): with
the tenant limit binding, placements/s is about the limit over the slot's hold
(``dial_ms + talk_ms + free_ms``), and the CPU figures say which process a busy machine starves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
import uvloop
from aiokafka import TopicPartition

from bench import dialer_support as support
from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings, Settings
from infra.stack import running_stack
from infra.topics import ensure_topics
from schemas.calls import CallEnded, TelephonyStatusChanged
from schemas.catalog import AGENT_EVENTS, CALL_EVENTS, DIALER_EVENTS, DIALER_REQUESTS, TopicSpec
from schemas.codec import Codec, key_bytes
from schemas.dialer import CallAttemptStarted, CallRequestCompleted
from schemas.registry import Record

ROOT = Path(__file__).resolve().parents[1]


def run_over_broker(requests: int, agents: int, limit: int, tenant_limit: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as data_dir,
        running_stack(Settings(env="test", data_dir=Path(data_dir)), durable=False) as stack,
    ):
        return uvloop.run(_run(stack.settings, requests, agents, limit, tenant_limit))


async def _run(
    settings: Settings, requests: int, agents: int, limit: int, tenant_limit: int
) -> dict[str, float]:
    await ensure_topics(settings.kafka, [replace(DIALER_EVENTS, partitions=1)])
    await ensure_topics(settings.kafka)
    codec = Codec.single_object()
    producer = make_producer(settings.kafka)
    await producer.start()
    sent: list[asyncio.Future[Any]] = []
    calls, counts, stages = support.LiveCalls(), Counter[str](), _Stages()

    async def publish(spec: TopicSpec, record: Record) -> None:
        key = key_bytes(spec.key_of(record))
        sent.append(await producer.send(spec.name, codec.encode(record), key=key))

    async def on_fact(fact: support.CallFact) -> None:
        stages.mark(fact)
        await publish(CALL_EVENTS, fact)

    def observe(record: Record) -> None:
        calls.observe(record)
        stages.mark(record)

    versions = support.agent_versions(agents, limit)
    try:
        for version in versions:
            await publish(AGENT_EVENTS, version)
        await producer.flush()
        async with (
            support.fake_twilio() as api,
            support.status_sink(on_fact, counts) as sink,
            _watching(settings.kafka, codec, observe),
            _dialer_worker(settings, api, sink, tenant_limit) as worker,
        ):
            await publish(DIALER_REQUESTS, support.place_call(requests, versions[0].agent_id))
            await worker.wait_for(calls.until_completed(1, 120))
            counts.clear()
            stages.seen.clear()
            t0, cpu0 = time.perf_counter(), _cpu_seconds()
            for n in range(requests):
                await publish(DIALER_REQUESTS, support.place_call(n, versions[n % agents].agent_id))
            await worker.wait_for(calls.until_completed(requests + 1, 600))
            elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    result = support.report(requests, counts["placed"], elapsed, calls, limit, tenant_limit)
    per_call = {f"{role}_cpu_ms": round(1000 * s / max(counts["placed"], 1), 2) for role, s in cpu.items()}
    return result | stages.means_ms() | per_call


_ROLES = (
    ("worker", "streams.dialer"),
    ("tansu", "tansu"),
    ("fake_twilio", "spawn_main"),
    ("postgres", "postgres"),
)


def _cpu_seconds() -> Counter[str]:
    """CPU seconds used so far by this process (``bench``: sink, publisher, watcher) and its children."""
    me = psutil.Process()
    used = Counter[str]()
    for proc in (me, *me.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            line = " ".join(proc.cmdline())
            role = "bench" if proc == me else next((r for r, mark in _ROLES if mark in line), "other")
            times = proc.cpu_times()
            used[role] += times.user + times.system
    return used


@dataclass
class _Stages:
    """When the bench saw each call reach each stage, for the mean time between stages.

    ``dial_ms``: the attempt read from the dialer's events until the fake's in-progress callback
    (CallReceived acked, REST create, initiated and ringing callbacks); ``talk_ms``: the fake's
    hold; ``free_ms``: the completed callback until the dialer's CallRequestCompleted is read
    (sink → calls events → router → by-tenant topic → dialer → dialer events). The dialer-events
    hop is in ``free_ms`` and missing from ``dial_ms``.
    """

    seen: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))

    def mark(self, record: Record) -> None:
        if isinstance(record, CallAttemptStarted | TelephonyStatusChanged | CallEnded | CallRequestCompleted):
            self.seen[record.call_id][_STAGES[type(record)]] = time.perf_counter()

    def means_ms(self) -> dict[str, float]:
        done = [t for t in self.seen.values() if len(t) == len(_STAGES)]
        return {
            name: round(1000 * sum(t[b] - t[a] for t in done) / max(len(done), 1), 1)
            for name, (a, b) in _GAPS.items()
        }


_STAGES = {
    CallAttemptStarted: "started",
    TelephonyStatusChanged: "answered",
    CallEnded: "ended",
    CallRequestCompleted: "freed",
}
_GAPS = {"dial_ms": ("started", "answered"), "talk_ms": ("answered", "ended"), "free_ms": ("ended", "freed")}


@contextlib.asynccontextmanager
async def _watching(
    kafka: KafkaSettings, codec: Codec, observe: Callable[[Record], None]
) -> AsyncIterator[None]:
    """Show ``observe`` every dialer event, from the topic's start."""
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    consumer.assign([TopicPartition(DIALER_EVENTS.name, 0)])
    await consumer.seek_to_beginning()

    async def watch() -> None:
        while True:
            for messages in (await consumer.getmany(timeout_ms=100)).values():
                for message in messages:
                    if message.value is not None:
                        observe(codec.decode(message.value))

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


@dataclass
class _Worker:
    process: asyncio.subprocess.Process
    log: Path

    async def wait_for(self, done: Coroutine[Any, Any, None]) -> None:
        """Await ``done``; fail with the worker's log if the worker dies or ``done`` times out."""
        task = asyncio.ensure_future(done)
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            if self.process.returncode is not None and not task.done():
                task.cancel()
                raise RuntimeError(f"the dialer worker died:\n{self.log.read_text()[-3000:]}")
        if task.exception() is not None:
            raise RuntimeError(
                f"the dialer fell short:\n{self.log.read_text()[-3000:]}"
            ) from task.exception()


@contextlib.asynccontextmanager
async def _dialer_worker(
    settings: Settings, api: str, sink: str, tenant_limit: int
) -> AsyncIterator[_Worker]:
    """``python -m streams.dialer`` on the stack's broker, dialling ``api``, called back at ``sink``."""
    log = settings.data_dir / "dialer.log"
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "VOICE_ENV": "test",
        "VOICE_DATA_DIR": str(settings.data_dir),
        "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
        "VOICE_TWILIO__AUTH_TOKEN": support.TOKEN,
        "VOICE_TWILIO__PUBLIC_BASE_URL": sink,
        "VOICE_TWILIO__API_BASE_URL": api,
        "VOICE_DIALER__APP_ID": f"bench-dialer-{uuid.uuid4().hex[:6]}",
        "VOICE_DIALER__TENANT_MAX_CONCURRENT_CALLS": str(tenant_limit),
        "TWILIO_REGION": "",
        "TWILIO_EDGE": "",
    }
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streams.dialer", cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        yield _Worker(process, log)
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
