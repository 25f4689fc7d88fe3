"""Failover bench (issue 5): SIGKILL a session worker that holds live calls; how long until they go on.

    .venv/bin/python bench/bench_failover.py --calls 1 10 30

Per level, a fresh platform: the embedded broker (no PostgreSQL: no agent here has knowledge),
the offline Gemini stand-in (`python -m streams.standin --pace 0 --timings`), one edge node (in
its own process, as bench_pipeline.py runs it, with a hook that stamps every bridge connection)
and two session workers (`python -m streams`, worker ids `failover-a` / `failover-b`, one app
id). The workers' group and failover settings are the platform's defaults, which `voiceagent
dev` does not change; the bench prints the values in force.

This process is Twilio: N calls over the real Media Streams protocol (bench_pipeline.py's
simulated calls, a 20 ms frame every 20 ms). Each call hears its greeting, says one phrase and
hears the answer; once every call has a resumption handle and an answer, the worker that owns
the most calls (the latest to open or resume their sessions) is SIGKILLed. Its calls keep
sending frames, which the edge buffers. As soon as a call's `GeminiSessionResumed` is on the
call events topic its caller speaks again. Per moved call, from the kill:

- resumed: `GeminiSessionResumed.occurred_at` (and by which worker, `fresh_session`);
- bridge: the new worker's bridge connection attached at the edge;
- uplink: the first caller audio the resumed session receives at the stand-in;
- answer: the first agent frame the caller hears after it spoke again (and, apart, from the end
  of that speech, which is the ordinary turn latency);
- dropped: caller frames the edge's buffer dropped on the call (`caller_buffer_s`).

Per level also: when the surviving worker saw the rebalance and got its partitions (its log),
and the survivor's own calls that were resumed too (the rebalance revokes its partitions).
Every wait is bounded; everything started is stopped on the way out (Ctrl-C and SIGTERM too).

All times are CLOCK_MONOTONIC across processes on one machine, except `occurred_at` (wall
clock, compared with the wall clock at the kill). Results: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop
from aiokafka import TopicPartition
from bench_pipeline import (
    GREETING,
    NUMBER,
    SHORT_REPLY,
    TOKEN,
    Phrase,
    SimCall,
    _answer_inbound,
    _pace,
    _publish_agent,
    _start_standin,
    open_stream,
)
from latency import stats
from pydantic import SecretStr
from twilio.request_validator import RequestValidator
from websockets.asyncio.server import ServerConnection

from edge.audio.speech import synthesize, to_rate
from edge.call import LiveCall
from edge.server import EdgeServer
from edge.telephony import RecordingTelephony
from edge.twiml import media_stream_url
from infra.embedded import start_broker
from infra.kafka import make_consumer
from infra.process import free_port, stop_child
from infra.settings import Settings
from infra.topics import ensure_topics
from schemas.catalog import CALL_EVENTS
from schemas.codec import Codec
from voiceagent.caller import SILENCE, to_frames

sys.path.insert(0, str(Path(__file__).parents[1]))  # the repo root, for the shared test support
from tests.support.workers import start_streams_worker

WORKERS = ("failover-a", "failover-b")
FIRST, AGAIN = "Hello, are you open today?", "Are you still there?"
CODEC = Codec.single_object()


# --- pure helpers ----------------------------------------------------------------------------


def owners_of(events: dict[str, list[Any]]) -> dict[str, str]:
    """Each call's worker: the latest to open or resume its Gemini session."""
    owners = {}
    for call_id, found in events.items():
        for event in found:
            if type(event).__name__ in ("GeminiSessionOpened", "GeminiSessionResumed"):
                owners[call_id] = event.worker_id
    return owners


def busiest(owners: dict[str, str]) -> str:
    """The worker that owns the most calls (the first named, on a tie)."""
    counts = Counter(owners.values())
    return max(sorted(counts), key=lambda worker: counts[worker])


def first_after(times: list[float], after: float) -> float | None:
    """The first time in ``times`` (any order) later than ``after``."""
    return min((t for t in times if t > after), default=None)


def logged_at(log: str, marker: str, after_wall: float) -> float | None:
    """Wall time of the first line of a worker's log (``[2026-11-27 18:55:34,251] ...``, local
    time) that contains ``marker`` and was written after ``after_wall``."""
    for line in log.splitlines():
        if marker in line and line.startswith("["):
            stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if stamp > after_wall:
                return stamp
    return None


def since_ms(at: float | None, origin: float) -> float | None:
    return None if at is None else round((at - origin) * 1000, 1)


def settings_in_force(settings: Settings) -> dict[str, Any]:
    """The group, failover and buffering settings a worker and the edge read from the environment."""
    s, k, e = settings.streams, settings.kafka, settings.edge
    return {
        "streams.session_timeout_s": s.session_timeout_s,
        "streams.heartbeat_interval_s": s.heartbeat_interval_s,
        "streams.rebalance_timeout_s": s.rebalance_timeout_s,
        "streams.tick_interval_s": s.tick_interval_s,
        "streams.commit_interval_s": s.commit_interval_s,
        "streams.fetch_max_wait_ms": s.fetch_max_wait_ms,
        "kafka.consumer_session_timeout_ms": k.consumer_session_timeout_ms,
        "kafka.consumer_heartbeat_interval_ms": k.consumer_heartbeat_interval_ms,
        "kafka.consumer_rebalance_timeout_ms": k.consumer_rebalance_timeout_ms,
        "edge.caller_buffer_s": e.caller_buffer_s,
        "edge.agent_wait_s": e.agent_wait_s,
    }


# --- the edge --------------------------------------------------------------------------------


def _edge_process(settings: Settings, commands: Any, out: Any) -> None:
    """The edge as `python -m edge` runs it, stamping each bridge connection (call, time, worker)."""
    attached: dict[str, list[tuple[float, str | None]]] = {}
    attach = LiveCall.attach_worker

    def stamped(
        call: LiveCall, worker: ServerConnection, worker_id: str | None = None
    ) -> ServerConnection | None:
        attached.setdefault(call.call_id, []).append((time.monotonic(), worker_id))
        return attach(call, worker, worker_id)

    LiveCall.attach_worker = stamped  # type: ignore[method-assign,assignment]  # a measuring hook

    async def run() -> None:
        server = EdgeServer(settings, telephony=RecordingTelephony())
        await server.start()
        for _ in range(600):  # the agent's number is routed (the edge follows the agent events)
            if server.routing.lookup(NUMBER) is not None:
                break
            await asyncio.sleep(0.05)
        out.put("ready")
        while await asyncio.to_thread(commands.get) == "report":
            calls = server.node.calls
            dropped = {call_id: call.session.caller.dropped for call_id, call in calls.items()}
            out.put({"attached": attached, "dropped": dropped, "counters": server.metrics.snapshot()})
        await server.drain(deadline_s=0)
        await server.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())


# --- the call events -------------------------------------------------------------------------


@dataclass
class EventWatch:
    """Every call's events as the platform appends them, and when this process read each."""

    settings: Settings
    events: dict[str, list[Any]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def kinds(self, call_id: str) -> list[str]:
        return [type(e).__name__ for e in self.events.get(call_id, [])]

    async def run(self) -> None:
        consumer = make_consumer(self.settings.kafka, group_id=None)
        await consumer.start()
        try:
            parts = [TopicPartition(CALL_EVENTS.name, p) for p in range(CALL_EVENTS.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        if record.key is not None and record.value is not None:
                            event = CODEC.decode(record.value)
                            self.events.setdefault(record.key.decode(), []).append(event)
                            self.changed.set()
        finally:
            await consumer.stop()

    async def until(self, ready: Callable[[], bool], within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not ready():
                    self.changed.clear()
                    await self.changed.wait()
                return True
        return False

    def first(self, call_id: str, kind: str, after_wall: float = 0.0) -> Any | None:
        return next(
            (
                e
                for e in self.events.get(call_id, [])
                if type(e).__name__ == kind and e.occurred_at.timestamp() > after_wall
            ),
            None,
        )


# --- one level -------------------------------------------------------------------------------


@dataclass
class Platform:
    settings: Settings
    edge_url: str
    standin_control: str
    workers: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    edge_commands: Any
    edge_out: Any


@dataclass
class Outcome:
    """One moved call's figures, ms from the kill (None: not seen)."""

    call_id: str
    resumed_ms: float | None = None
    resumed_by: str | None = None
    fresh_session: bool | None = None
    bridge_ms: float | None = None
    uplink_ms: float | None = None
    answer_ms: float | None = None
    answer_after_speech_ms: float | None = None
    dropped_frames: int = 0
    error: str | None = None


def _phrase(text: str) -> Phrase:
    frames = to_frames(to_rate(*synthesize(text), 8000))
    return Phrase(frames=[base64.b64encode(f).decode() for f in frames], vad_decision=0)


async def _place_call(
    platform: Platform,
    client: httpx.AsyncClient,
    first: Phrase,
    watch: EventWatch,
    calls: list[SimCall],
    delay: float,
) -> SimCall:
    """After ``delay`` (ten calls a second, as bench_pipeline ramps them): answer, stream,
    greeting, one turn; returns once the call has a resumption handle too.

    The call joins ``calls`` (the pacer's list) as its stream starts."""
    await asyncio.sleep(delay)
    params = await _answer_inbound(client, platform.edge_url)
    call = SimCall(len(calls), params["call_id"], params)
    calls.append(call)
    turns = [{"caller": FIRST, "reply": SHORT_REPLY}, {"caller": AGAIN, "reply": SHORT_REPLY}]
    script = {"greeting": GREETING, "turns": turns}
    await client.put(f"{platform.standin_control}/scripts/{call.call_id}", json=script)
    media_url = media_stream_url(platform.edge_url)
    await open_stream(call, media_url, RequestValidator(TOKEN).compute_signature(media_url, {}))
    greeting = await call.wait("heard", call.start_at, 30)
    if greeting is None:
        raise RuntimeError("no greeting")
    await call.wait("marks", greeting, 15)
    await call.say(first)
    answer = await call.wait("heard", time.monotonic(), 15)
    if answer is None:
        raise RuntimeError("no answer to the first phrase")
    await call.wait("marks", answer, 15)  # played to its end
    if not await watch.until(lambda: "ResumptionHandleUpdated" in watch.kinds(call.call_id), 15):
        raise RuntimeError("no resumption handle")
    return call


async def _after_kill(
    call: SimCall, watch: EventWatch, again: Phrase, kill_wall: float, kill_mono: float, within: float
) -> Outcome:
    """Wait for the call's resumption, speak again, and time the answer."""
    outcome = Outcome(call.call_id)
    await watch.until(
        lambda: watch.first(call.call_id, "GeminiSessionResumed", kill_wall) is not None, within
    )
    resumed = watch.first(call.call_id, "GeminiSessionResumed", kill_wall)
    if resumed is None:
        outcome.error = f"not resumed within {within:.0f} s"
        return outcome
    outcome.resumed_ms = round((resumed.occurred_at.timestamp() - kill_wall) * 1000, 1)
    outcome.resumed_by, outcome.fresh_session = resumed.worker_id, resumed.fresh_session
    await call.say(again)
    spoken = time.monotonic()
    heard = await call.wait("heard", spoken, 20)
    if heard is None:
        outcome.error = "no answer after the caller spoke again"
    outcome.answer_ms = since_ms(heard, kill_mono)
    outcome.answer_after_speech_ms = since_ms(heard, spoken)
    return outcome


async def _edge_report(platform: Platform) -> dict[str, Any]:
    platform.edge_commands.put("report")
    report: dict[str, Any] = await asyncio.to_thread(platform.edge_out.get, True, 30)
    return report


def _from_edge(outcome: Outcome, report: dict[str, Any], kill_mono: float) -> None:
    """The call's first bridge connection after the kill, and the caller frames its buffer dropped."""
    stamps = report["attached"].get(outcome.call_id, [])
    outcome.bridge_ms = since_ms(first_after([t for t, _worker in stamps], kill_mono), kill_mono)
    outcome.dropped_frames = report["dropped"].get(outcome.call_id, 0)


async def _standin_uplink(
    client: httpx.AsyncClient, platform: Platform, outcome: Outcome, kill_mono: float
) -> None:
    """The first caller audio a session of the call received after the kill, at the stand-in."""
    answer = await client.get(f"{platform.standin_control}/timings", params={"key": outcome.call_id})
    arrivals = [at for session in answer.json() for at, _size in session["audio_in"]]
    outcome.uplink_ms = since_ms(first_after(arrivals, kill_mono), kill_mono)


async def _level(platform: Platform, n: int, recover_within: float) -> dict[str, Any]:
    watch = EventWatch(platform.settings)
    watching = asyncio.create_task(watch.run())
    calls: list[SimCall] = []
    stop = asyncio.Event()
    pacer = asyncio.create_task(_pace(calls, base64.b64encode(SILENCE).decode(), stop))
    first, again = _phrase(FIRST), _phrase(AGAIN)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            placed = await asyncio.gather(
                *(_place_call(platform, client, first, watch, calls, delay=i / 10) for i in range(n)),
                return_exceptions=True,
            )
            failed_setup = [repr(p) for p in placed if isinstance(p, BaseException)]
            ready = [p for p in placed if isinstance(p, SimCall)]
            if not ready:
                raise RuntimeError(f"no call was set up: {failed_setup[:3]}")
            owners = owners_of(watch.events)
            victim = busiest({c.call_id: owners[c.call_id] for c in ready if c.call_id in owners})
            moved = [c for c in ready if owners.get(c.call_id) == victim]
            load_at_kill = os.getloadavg()
            kill_wall, kill_mono = time.time(), time.monotonic()
            platform.workers[victim].send_signal(signal.SIGKILL)
            platform.workers[victim].wait()
            outcomes = await asyncio.gather(
                *(_after_kill(c, watch, again, kill_wall, kill_mono, recover_within) for c in moved)
            )
            report = await _edge_report(platform)
            for outcome in outcomes:
                _from_edge(outcome, report, kill_mono)
                await _standin_uplink(client, platform, outcome, kill_mono)
    finally:
        stop.set()
        for call in calls:
            call.live = False
            call.stop()
        with contextlib.suppress(Exception):
            await pacer
        watching.cancel()
        with contextlib.suppress(BaseException):
            await watching
    survivor = _survivor_side(platform, watch, [c for c in ready if c not in moved], victim, kill_wall)
    return _summarise(n, victim, owners, outcomes, failed_setup, report, load_at_kill) | survivor


def _survivor_side(
    platform: Platform, watch: EventWatch, stayed: list[SimCall], victim: str, kill_wall: float
) -> dict[str, Any]:
    """The rebalance as the surviving worker saw it (its log, ms resolution), and its own calls:
    the rebalance revokes its partitions too, as it rejoins the group."""
    resumed = [watch.first(c.call_id, "GeminiSessionResumed", kill_wall) for c in stayed]
    restarted = [(e.occurred_at.timestamp() - kill_wall) * 1000 for e in resumed if e is not None]
    survivor = next(name for name in WORKERS if name != victim)
    log = platform.logs[survivor].read_text(errors="replace")
    return {
        "kill_to_rebalance_seen_ms": since_ms(
            logged_at(log, "Revoking previously assigned", kill_wall), kill_wall
        ),
        "kill_to_assigned_ms": since_ms(logged_at(log, "Setting newly assigned", kill_wall), kill_wall),
        "stayed_calls": len(stayed),
        "stayed_calls_resumed": len(restarted),
        "stayed_kill_to_resumed_ms": stats(restarted, digits=0),
    }


def _summarise(
    n: int,
    victim: str,
    owners: dict[str, str],
    outcomes: list[Outcome],
    failed_setup: list[str],
    report: dict[str, Any],
    load: tuple[float, float, float],
) -> dict[str, Any]:
    def figure(name: str) -> dict[str, float | int]:
        return stats([getattr(o, name) for o in outcomes], digits=0)

    recovered = [o for o in outcomes if o.error is None]
    counters = report["counters"]
    return {
        "calls": n,
        "killed": victim,
        "calls_per_worker": dict(Counter(owners.values())),
        "moved_calls": len(outcomes),
        "not_recovered": len(outcomes) - len(recovered),
        "errors": sorted({o.error for o in outcomes if o.error})[:3],
        "failed_before_kill": failed_setup[:3],
        "resumed_by": dict(Counter(o.resumed_by for o in outcomes if o.resumed_by)),
        "fresh_sessions": sum(1 for o in outcomes if o.fresh_session),
        "kill_to_resumed_ms": figure("resumed_ms"),
        "kill_to_bridge_ms": figure("bridge_ms"),
        "kill_to_uplink_ms": figure("uplink_ms"),
        "kill_to_answer_ms": figure("answer_ms"),
        "speech_end_to_answer_ms": figure("answer_after_speech_ms"),
        "dropped_frames": stats([o.dropped_frames for o in outcomes], digits=0),
        "calls_with_dropped_frames": sum(1 for o in outcomes if o.dropped_frames),
        "edge_counters": {k: v for k, v in counters.items() if k.startswith(("bridge.", "streams.no_agent"))},
        "load_avg_at_kill": [round(x, 2) for x in load],
    }


# --- processes -------------------------------------------------------------------------------


def _edge_settings(settings: Settings, data_dir: Path) -> Settings:
    port = free_port()
    edge = settings.edge.model_copy(
        update={
            "port": port,
            "bridge_port": free_port(),
            "max_streams": 1000,
            "recordings_dir": data_dir / "rec",
        }
    )
    twilio = settings.twilio.model_copy(
        update={"public_base_url": f"http://127.0.0.1:{port}", "auth_token": SecretStr(TOKEN)}
    )
    return settings.model_copy(update={"edge": edge, "twilio": twilio})


def _wait_ready(workers: dict[str, Path], within: float = 90.0) -> None:
    """Both workers are in the group and have recovered their partitions (Faust's "Ready")."""
    deadline = time.monotonic() + within
    while not all("Ready" in log.read_text(errors="replace") for log in workers.values()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not get ready; see {list(workers.values())}")
        time.sleep(0.2)


@contextlib.contextmanager
def _platform(data_dir: Path) -> Iterator[Platform]:
    """Broker, stand-in, edge and two workers; everything started is stopped on the way out."""
    base = Settings(env="test", data_dir=data_dir)
    broker = start_broker(data_dir)
    started: list[subprocess.Popen[bytes]] = []
    edge: multiprocessing.process.BaseProcess | None = None
    commands: Any = None
    try:
        settings = base.model_copy(
            update={"kafka": base.kafka.model_copy(update={"bootstrap": broker.address})}
        )
        asyncio.run(ensure_topics(settings.kafka))
        asyncio.run(_publish_agent(settings, f"agent-{uuid.uuid4().hex[:8]}"))
        standin, addresses = _start_standin(data_dir, 0.0, 0)
        started.append(standin)
        edge_settings = _edge_settings(settings, data_dir)
        ctx = multiprocessing.get_context("spawn")
        commands, out = ctx.Queue(), ctx.Queue()
        edge = ctx.Process(target=_edge_process, args=(edge_settings, commands, out))
        edge.start()
        app_id = f"failover-{uuid.uuid4().hex[:6]}"
        logs = {name: data_dir / name / "worker.log" for name in WORKERS}
        workers = {}
        for name, log in logs.items():
            log.parent.mkdir(parents=True)
            workers[name] = start_streams_worker(
                settings,
                log,
                app_id=app_id,
                worker_id=name,
                gemini_base_url=addresses["base_url"],
                gemini_ca_file=addresses["ca_file"],
            )
            started.append(workers[name])
        if out.get(timeout=120) != "ready":
            raise RuntimeError("the edge did not start")
        _wait_ready(logs)
        time.sleep(2.0)  # the group's last rebalance settles
        yield Platform(
            settings=settings,
            edge_url=edge_settings.twilio.public_base_url,
            standin_control=addresses["control_url"],
            workers=workers,
            logs=logs,
            edge_commands=commands,
            edge_out=out,
        )
    finally:
        if edge is not None:
            commands.put("stop")
            edge.join(timeout=20)
            if edge.is_alive():
                edge.kill()
                edge.join()
        for proc in reversed(started):
            stop_child(proc, timeout=20)
        broker.stop()


def _table(results: list[dict[str, Any]]) -> str:
    def pp(figure: dict[str, Any]) -> str:
        return f"{figure['p50']:.0f} / {figure['p99']:.0f} / {figure['max']:.0f}" if figure.get("n") else "-"

    lines = [
        "| calls | moved | not recovered | kill → survivor assigned ms | kill → resumed p50/p99/max ms "
        "| kill → bridge | kill → uplink | kill → answer | speech end → answer | frames dropped p50/max |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        dropped = r["dropped_frames"]
        lines.append(
            f"| {r['calls']} | {r['moved_calls']} | {r['not_recovered']} | {r['kill_to_assigned_ms']} | "
            f"{pp(r['kill_to_resumed_ms'])} | "
            f"{pp(r['kill_to_bridge_ms'])} | {pp(r['kill_to_uplink_ms'])} | {pp(r['kill_to_answer_ms'])} | "
            f"{pp(r['speech_end_to_answer_ms'])} | "
            f"{dropped.get('p50', '-')} / {dropped.get('max', '-')} |"
        )
    return "\n".join(lines)


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(143)  # unwinds through the context managers: everything started is stopped


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument(
        "--recover-within", type=float, default=30.0, help="s a moved call may take to resume"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    print(f"data and logs (kept for inspection; delete when done): {root}", flush=True)
    print(
        "settings in force:", json.dumps(settings_in_force(Settings(env="test", data_dir=root))), flush=True
    )
    results = []
    for n in args.calls:
        print(f"level {n} calls (fresh platform)...", flush=True)
        with (
            _platform(root / f"level-{n}") as platform,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            result = runner.run(asyncio.wait_for(_level(platform, n, args.recover_within), 300))
        print(json.dumps(result, indent=2), flush=True)
        results.append(result)
    print(_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
