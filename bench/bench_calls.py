"""Calls worker bench: how long a call input waits before its event is on the log, under load.

    .venv/bin/python bench/bench_calls.py --calls 100 --rate 5 --seconds 20

Starts the embedded broker and one calls worker (`python -m streams`, sessions off: this measures
the state machine's shell alone, the hop every call fact takes). N calls each get `CallReceived`
and `MediaStreamStarted`, then transcript facts at `--rate` per call-second, sent the way the
edge sends facts (a producer that does not wait for each ack). Each input carries a unique
`occurred_at`, which the decider copies onto the event it appends, so every event names its
input. Reported: input sent -> event readable on the events topic (p50/p99/max), the CPU of
the worker, the broker and this process (the producer and the reader), and how many inputs
were still without an event when the window closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import ConsumerRecord  # noqa: E402

from infra.embedded import start_broker  # noqa: E402
from infra.kafka import make_producer  # noqa: E402
from infra.settings import KafkaSettings  # noqa: E402
from infra.topics import ensure_topics  # noqa: E402
from schemas.call_media import MediaStreamStarted, TranscriptSegment  # noqa: E402
from schemas.calls import CallReceived  # noqa: E402
from schemas.catalog import CALL_INPUTS  # noqa: E402
from schemas.codec import Codec  # noqa: E402
from schemas.ids import AgentId, CallId, CorrelationId, EventId, TenantId  # noqa: E402
from voiceagent.simulate import follow_call_records  # noqa: E402

CODEC = Codec.single_object()
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _envelope(call_id: CallId, stamp: int) -> dict[str, Any]:
    """An input's envelope; `stamp` (µs after EPOCH) is unique per input and names its event."""
    return {
        "tenant_id": TenantId("tenant-bench"),
        "call_id": call_id,
        "seq": 0,
        "event_id": EventId(str(uuid.uuid4())),
        "occurred_at": EPOCH + timedelta(microseconds=stamp),
        "correlation_id": CorrelationId(f"corr-{call_id}"),
    }


def _opening(call_id: CallId, stamp: int) -> list[Any]:
    received = CallReceived(
        **_envelope(call_id, stamp),
        direction="inbound",
        from_number="+15550001",
        to_number="+15550002",
        agent_id=AgentId("agent-bench"),
        agent_version=1,
        max_duration_s=3600,
        silence_timeout_s=0,
    )
    started = MediaStreamStarted(
        **_envelope(call_id, stamp + 1),
        stream_sid=f"MZ-{call_id}",
        twilio_call_sid=f"CA-{call_id}",
        edge_id="edge-bench",
        bridge_url="ws://127.0.0.1:1/bridge",
        bridge_token="token",
        token_expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    return [received, started]


def _segment(call_id: CallId, stamp: int, index: int) -> TranscriptSegment:
    return TranscriptSegment(
        **_envelope(call_id, stamp),
        speaker="caller",
        text=f"words number {index}",
        final=True,
        start_ms=index * 200,
        end_ms=index * 200 + 180,
        segment_index=index,
    )


class Ledger:
    """When each input was sent, by its stamp; when its event was read."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.latency_s: list[float] = []

    def stamp_of(self, occurred_at: datetime) -> int:
        return (occurred_at - EPOCH) // timedelta(microseconds=1)


async def _follow(kafka: KafkaSettings, ledger: Ledger, ready: asyncio.Event) -> None:
    """Time every event that names an input of the ledger; forever (cancel it)."""

    async def read(record: ConsumerRecord[bytes, bytes]) -> None:
        occurred_at = getattr(CODEC.decode(record.value), "occurred_at", None) if record.value else None
        sent = ledger.sent.pop(ledger.stamp_of(occurred_at), None) if occurred_at else None
        if sent is not None:
            ledger.latency_s.append(time.monotonic() - sent)

    await follow_call_records(kafka, ready, read, fetch_max_wait_ms=5)


async def _drive(
    kafka: KafkaSettings, calls: int, rate: float, seconds: float, ledger: Ledger
) -> dict[str, Any]:
    producer = make_producer(kafka)
    await producer.start()
    stamp = 0
    pending: set[asyncio.Future[Any]] = set()

    async def send(record: Any) -> None:
        ledger.sent[ledger.stamp_of(record.occurred_at)] = time.monotonic()
        future = await producer.send(CALL_INPUTS.name, CODEC.encode(record), record.call_id.encode())
        pending.add(future)
        future.add_done_callback(pending.discard)

    ids = [CallId(f"call-{uuid.uuid4().hex[:12]}") for _ in range(calls)]
    for call_id in ids:  # ten new calls a second, as the system bench starts them
        for record in _opening(call_id, stamp):
            await send(record)
        stamp += 2
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    ledger.latency_s.clear()  # the window measures the steady state only
    period = 1.0 / (rate * calls)
    begin, index = time.monotonic(), 0
    while time.monotonic() - begin < seconds:
        call_id = ids[index % calls]
        await send(_segment(call_id, stamp, index // calls))
        stamp += 1
        index += 1
        await asyncio.sleep(max(0.0, begin + index * period - time.monotonic()))
    if pending:
        await asyncio.wait(pending)
    await producer.stop()
    return {"inputs_sent": index}


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"n": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 2)}


async def _level(
    kafka: KafkaSettings, broker_pid: int, data_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    env = (
        os.environ
        | {
            "PYTHONPATH": str(ROOT),
            "VOICE_KAFKA__BOOTSTRAP": kafka.bootstrap or "",
            "VOICE_STREAMS__APP_ID": f"calls-bench-{uuid.uuid4().hex[:6]}",
            "VOICE_STREAMS__SESSIONS_ENABLED": "false",
            "VOICE_DATA_DIR": str(data_dir),
            "VOICE_LOG_LEVEL": "WARNING",
        }
        | dict(item.split("=", 1) for item in args.env)
    )
    worker = _spawn_worker(env, data_dir / "worker.log")
    try:
        ledger, ready = Ledger(), asyncio.Event()
        follower = asyncio.create_task(_follow(kafka, ledger, ready))
        await ready.wait()
        # The worker has joined once a first call's events come back.
        await _drive_until_answered(kafka, ledger)
        procs = {
            "worker": psutil.Process(worker.pid),
            "broker": psutil.Process(broker_pid),
            "bench": psutil.Process(),
        }
        cpu0, wall0 = {k: _busy(p) for k, p in procs.items()}, time.monotonic()
        driven = await _drive(kafka, args.calls, args.rate, args.seconds, ledger)
        await asyncio.sleep(2.0)  # let the last inputs through
        cpu1, wall1 = {k: _busy(p) for k, p in procs.items()}, time.monotonic()
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        return {
            "calls": args.calls,
            "inputs_per_call_second": args.rate,
            **driven,
            "input_to_event": _quantiles(ledger.latency_s),
            "inputs_without_event": len(ledger.sent),
            "cpu_pct_of_one_core": {k: round((cpu1[k] - cpu0[k]) / (wall1 - wall0) * 100, 1) for k in procs},
            "env": args.env,
        }
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _busy(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _spawn_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "streams"], cwd=ROOT, env=env, stdout=log, stderr=log)


async def _drive_until_answered(kafka: KafkaSettings, ledger: Ledger) -> None:
    """Send one call's opening until its events come back: the worker has its partitions."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            call_id = CallId(f"probe-{uuid.uuid4().hex[:8]}")
            before = len(ledger.latency_s)
            for record in _opening(call_id, -1_000_000 - int(time.monotonic() * 1000)):
                ledger.sent[ledger.stamp_of(record.occurred_at)] = time.monotonic()
                await producer.send_and_wait(CALL_INPUTS.name, CODEC.encode(record), call_id.encode())
            for _ in range(20):
                await asyncio.sleep(0.25)
                if len(ledger.latency_s) > before:
                    ledger.sent.clear()
                    return
        raise SystemExit("the calls worker never answered; see worker.log")
    finally:
        await producer.stop()


async def _main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        data_dir = Path(tmp)
        (data_dir / "logs").mkdir()
        broker = start_broker(data_dir)
        try:
            kafka = KafkaSettings(bootstrap=broker.address)
            await ensure_topics(kafka)
            print(json.dumps(await _level(kafka, broker.pid, data_dir, args), indent=2))
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0, help="inputs per call-second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--env", nargs="*", default=[], help="extra worker settings, NAME=value")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
