"""System load test: N concurrent simulated calls through the whole platform on this machine.

    .venv/bin/python bench/bench_system.py --calls 10 25 50 --seconds 30

Starts the platform exactly as `voiceagent dev` does (embedded broker and PostgreSQL, offline
Gemini stand-in), then for each N runs N callers at once for a bounded time: each caller talks,
waits for the agent's reply, sometimes talks over it (barge-in), and hangs up at the end. Calls
start ten a second. Reported per N: caller audio the edge dropped or saw out of order and
sequence gaps (from MediaStreamStopped), CPU and memory per process and per call, and the
simulator's own CPU; first, with `--idle`, the platform's CPU with no call at all. The
pipeline's added latency (uplink: caller frame sent -> its audio at the stand-in; downlink: an
answer's first audio leaving the stand-in -> its first Twilio frame) is measured as
bench_pipeline.py measures it (bench/latency.py), over whole calls. Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import ConsumerRecord
from rich.console import Console

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from latency import Latencies, stats  # noqa: E402

from edge.audio.speech import synthesize, to_rate  # noqa: E402
from edge.twiml import media_stream_url  # noqa: E402
from infra.process import fast_loop_factory, free_port  # noqa: E402
from infra.settings import KafkaSettings  # noqa: E402
from schemas.codec import Codec  # noqa: E402
from voiceagent.caller import SimulatedCaller, to_frames  # noqa: E402
from voiceagent.devfile import DevAddresses  # noqa: E402
from voiceagent.simulate import CallWatch, SimulationError, _answer, follow_call_records  # noqa: E402

# Facts whose time from producer to the events topic is reported: the calls worker's hop.
LAG_TRACKED = ("MediaStreamStarted", "GeminiSessionOpened", "CallerSpeechStarted")

PHRASES = ["Hello, are you open today?", "Can I book a table for two?", "What is on the menu tonight?"]


@dataclass
class CallResult:
    dropped_frames: int = 0  # caller audio the edge dropped: its buffer overflowed, or out of order
    gap_frames: int = 0  # Twilio sequence numbers the edge never saw (the simulator fell behind)
    barge_ins: int = 0
    turns: int = 0
    error: str | None = None
    stream_to_session_s: float | None = None  # MediaStreamStarted -> GeminiSessionOpened
    call_id: str = ""
    sent_at: list[float] = field(default_factory=list)  # each Twilio frame sent (monotonic)
    heard_at: list[float] = field(default_factory=list)  # each Twilio frame heard (monotonic)


def start_platform(data_dir: Path, session_workers: int) -> tuple[subprocess.Popen[bytes], DevAddresses]:
    edge_port = free_port()
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "VOICE_DATA_DIR": str(data_dir),
        "VOICE_EDGE__PORT": str(edge_port),
        "VOICE_EDGE__BRIDGE_PORT": str(free_port()),
        "VOICE_EDGE__MAX_STREAMS": "1000",
        "VOICE_API__PORT": str(free_port()),
        "VOICE_TWILIO__PUBLIC_BASE_URL": f"http://127.0.0.1:{edge_port}",
        "VOICE_STANDIN_TIMINGS": "1",  # the stand-in stamps audio in and out: the latency figures
    }
    out = (data_dir / "dev.out").open("ab")
    dev = subprocess.Popen(
        [sys.executable, "-m", "voiceagent.cli", "dev", "--session-workers", str(session_workers)],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=out,
    )
    deadline = time.monotonic() + 180
    while not (data_dir / "dev.json").exists():
        if dev.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the platform did not start; see {data_dir / 'dev.out'}")
        time.sleep(0.5)
    return dev, DevAddresses.read(data_dir)


class SharedFollower:
    """One consumer of the call events for every simulated call of a level.

    `voiceagent call simulate` follows its one call with a consumer of its own; N of them would
    put N consumers polling the broker, load the platform never sees in production, counted
    against it here. This bench hands each record to the calls' watches instead.
    """

    def __init__(self, bootstrap: str) -> None:
        self.watches: list[CallWatch] = []
        self.events_by_type: dict[str, int] = {}  # what the broker carried, for its load
        # Per tracked fact: its producer -> the calls worker's event on the log (the platform's
        # hop), and that event -> read here (this process's own lag). One machine, one clock.
        self.hop_s: dict[str, list[float]] = {name: [] for name in LAG_TRACKED}
        self.reader_lag_s: list[float] = []
        self._kafka = KafkaSettings(bootstrap=bootstrap)
        self._codec = Codec.single_object()

    async def run(self, ready: asyncio.Event) -> None:
        await follow_call_records(self._kafka, ready, self._dispatch)

    async def _dispatch(self, record: ConsumerRecord[bytes, bytes]) -> None:
        key, value, logged_at = record.key, record.value, record.timestamp / 1000
        if key is None or value is None:
            return
        event = self._codec.decode(value)
        name = type(event).__name__
        self.events_by_type[name] = self.events_by_type.get(name, 0) + 1
        if name in self.hop_s:
            self.hop_s[name].append(logged_at - event.occurred_at.timestamp())  # type: ignore[union-attr]
            self.reader_lag_s.append(time.time() - logged_at)
        for watch in list(self.watches):  # calls end (and leave the list) meanwhile
            await watch.offer(key, value, self._codec)


async def one_call(
    addresses: DevAddresses,
    audio: list[list[bytes]],
    seconds: float,
    result: CallResult,
    follower: SharedFollower,
) -> None:
    watch = CallWatch(Console(quiet=True))
    follower.watches.append(watch)
    parameters = await _answer(addresses, addresses.demo_number)
    call_id = parameters["call_id"]
    result.call_id = call_id
    turns = [
        {"caller": p, "reply": "Certainly. This is the offline stand-in answering your question."}
        for p in PHRASES * 10
    ]
    assert addresses.standin_control_url
    async with httpx.AsyncClient() as client:
        await client.put(f"{addresses.standin_control_url}/scripts/{call_id}", json={"turns": turns})
    await watch.attach(call_id)
    caller = SimulatedCaller(
        media_stream_url(addresses.edge_url),
        addresses.twilio_auth_token,
        stream_sid="MZ" + uuid.uuid4().hex,
        call_sid="CA" + uuid.uuid4().hex,
    )
    end_at = time.monotonic() + seconds
    try:
        await caller.open(parameters)
        await watch.wait(lambda w: "GeminiSessionOpened" in w.kinds, 60, "session")
        turn = 0
        while time.monotonic() < end_at:
            frames = audio[turn % len(audio)]
            replies = watch.kinds.count("AgentSpeechStarted")
            caller.say(frames)
            await caller.said()
            with contextlib.suppress(SimulationError):  # no reply in time: talk again anyway
                await watch.wait(lambda w, n=replies: w.kinds.count("AgentSpeechStarted") > n, 15, "reply")
            result.turns += 1
            if random.random() < 0.3:  # talk over the agent now and then
                await asyncio.sleep(0.8)
                caller.say(frames[: len(frames) // 2])
                result.barge_ins += 1
            await asyncio.sleep(random.uniform(2.0, 4.0))
            turn += 1
        await caller.hang_up()
        await watch.wait(lambda w: "CallEnded" in w.kinds or "CallFailed" in w.kinds, 30, "end")
    except Exception as err:  # one failed call is a finding, not a crash of the bench
        result.error = f"{type(err).__name__}: {err}"
    finally:
        if not caller.closed.is_set():
            await caller.hang_up()
        follower.watches.remove(watch)
    result.sent_at, result.heard_at = caller.audio.sent_at, caller.audio.heard_at
    stopped = [e for e in watch.events if type(e).__name__ == "MediaStreamStopped"]
    if stopped:
        result.dropped_frames, result.gap_frames = stopped[0].frames_dropped, stopped[0].frames_gaps
    first = {type(e).__name__: e.occurred_at for e in reversed(watch.events)}
    if "MediaStreamStarted" in first and "GeminiSessionOpened" in first:
        opened = first["GeminiSessionOpened"] - first["MediaStreamStarted"]
        result.stream_to_session_s = opened.total_seconds()


async def pipeline_latency(addresses: DevAddresses, results: list[CallResult]) -> Latencies:
    """The pipeline's added latency per call, as bench_pipeline measures it (bench/latency.py):
    the stand-in's audio times (it runs with timings on) against the simulator's frame times."""
    found = Latencies()
    assert addresses.standin_control_url
    async with httpx.AsyncClient(timeout=30) as client:
        for result in results:
            if not result.call_id:
                continue
            url = f"{addresses.standin_control_url}/timings"
            answer = await client.get(url, params={"key": result.call_id})
            sessions = answer.json()
            if sessions:
                found.add_call(result.sent_at, result.heard_at, sessions[0])
    return found


def platform_processes(dev: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process(dev.pid).children(recursive=True)
    return children


def process_name(proc: psutil.Process) -> str:
    argv = proc.cmdline()
    worker = next((a for a in argv if a.startswith("worker-")), "")
    return (" ".join(argv[1:4])[:40] or proc.name()) + (f" {worker}" if worker else "")


def platform_cpu(procs: list[psutil.Process], seconds: float) -> float:
    """The platform's CPU over the next ``seconds`` (% of one core, all its processes)."""
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.cpu_percent(None)
    time.sleep(seconds)
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.cpu_percent(None)
    return total


def wait_until_settled(dev: subprocess.Popen[bytes], *, window_s: float = 3.0, max_s: float = 90.0) -> float:
    """Wait out start-up work (seeding, group joins, the broker's first fetches) before measuring.

    Settled: two windows in a row within 5 points of each other. A fixed 10 s wait was too short
    on some start-ups (the broker still at 46 % of a core, against 30-34 % once settled), and
    the levels measured after it drowned.
    """
    procs = platform_processes(dev)
    deadline = time.monotonic() + max_s
    previous = platform_cpu(procs, window_s)
    while time.monotonic() < deadline:
        current = platform_cpu(procs, window_s)
        print(f"settling: platform at {current:.0f} % of a core (was {previous:.0f} %)", flush=True)
        if abs(current - previous) < 5.0:
            return current
        previous = current
    print(f"the platform did not settle within {max_s:.0f} s; measuring anyway", flush=True)
    return previous


def idle_level(dev: subprocess.Popen[bytes], seconds: float) -> dict[str, Any]:
    """The platform's fixed cost: CPU per process with no call at all."""
    procs = platform_processes(dev)
    for proc in procs:
        proc.cpu_percent(None)
    time.sleep(seconds)
    cpu = {}
    for proc in procs:
        try:
            cpu[f"{process_name(proc)} ({proc.pid})"] = proc.cpu_percent(None)
        except psutil.NoSuchProcess:
            continue
    return {"calls": 0, "seconds": seconds, "platform_cpu_pct": round(sum(cpu.values()), 1), "processes": cpu}


async def run_level(
    addresses: DevAddresses, dev: subprocess.Popen[bytes], n: int, seconds: float
) -> dict[str, Any]:
    audio = [to_frames(to_rate(*synthesize(p), 8000)) for p in PHRASES]
    procs = platform_processes(dev)
    for proc in procs:
        proc.cpu_percent(None)
    me = psutil.Process()
    me.cpu_percent(None)
    started = time.monotonic()
    results = [CallResult() for _ in range(n)]
    follower = SharedFollower(addresses.bootstrap)
    ready = asyncio.Event()
    following = asyncio.create_task(follower.run(ready))
    await asyncio.wait_for(ready.wait(), 30)

    async def staggered(i: int, result: CallResult) -> None:
        await asyncio.sleep(i * 0.1)  # ten new calls a second, as a busy line would see them
        await one_call(addresses, audio, seconds, result, follower)

    await asyncio.gather(*(staggered(i, r) for i, r in enumerate(results)))
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    elapsed = time.monotonic() - started
    cpu = {}
    for proc in procs:
        try:
            name = f"{process_name(proc)} ({proc.pid})"
            cpu[name] = {"cpu_pct": proc.cpu_percent(None), "rss_mb": proc.memory_info().rss / 2**20}
        except psutil.NoSuchProcess:
            continue
    total_cpu = sum(v["cpu_pct"] for v in cpu.values())
    latency = await pipeline_latency(addresses, results)
    return {
        "calls": n,
        "seconds": round(elapsed, 1),
        "failed_calls": sum(1 for r in results if r.error),
        "errors": sorted({r.error for r in results if r.error})[:3],
        "edge_dropped_frames": sum(r.dropped_frames for r in results),
        "edge_sequence_gaps": sum(r.gap_frames for r in results),
        "dropped_frames_per_call": sorted(r.dropped_frames for r in results if r.dropped_frames)[::-1],
        "stream_to_session_s": _seconds([r.stream_to_session_s for r in results]),
        "uplink_ms": stats(latency.uplink),
        "downlink_ms": stats(latency.downlink),
        "uplink_chunks_unmatched": latency.uplink_chunks_unmatched,
        "answers_unmatched": latency.answers_unmatched,
        "barge_ins": sum(r.barge_ins for r in results),
        "caller_turns": sum(r.turns for r in results),
        "fact_to_event_log_s": {name: _seconds(list(v)) for name, v in follower.hop_s.items()},
        "event_log_to_bench_s": _seconds(list(follower.reader_lag_s)),
        "call_events_per_s": round(sum(follower.events_by_type.values()) / elapsed, 1),
        "call_events_by_type": dict(sorted(follower.events_by_type.items(), key=lambda kv: -kv[1])),
        "platform_cpu_pct": round(total_cpu, 1),
        "platform_cpu_pct_per_call": round(total_cpu / n, 2),
        "simulator_cpu_pct": me.cpu_percent(None),
        "processes": cpu,
    }


def _seconds(values: Sequence[float | None]) -> dict[str, float | int]:
    return stats(values, digits=3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--session-workers", type=int, default=1, help="`voiceagent dev --session-workers`")
    parser.add_argument("--idle", type=float, default=15, help="first measure the platform idle this long")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-system-"))
    print(f"data and logs (kept for inspection; delete when done): {data_dir}", flush=True)
    dev, addresses = start_platform(data_dir, args.session_workers)
    try:
        time.sleep(5)  # the platform's processes, all started
        wait_until_settled(dev)
        if args.idle > 0:
            print(json.dumps(idle_level(dev, args.idle), indent=2), flush=True)
        for n in args.calls:
            # uvloop: the simulator's CPU counts against the machine, so it should be cheap
            with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
                level = runner.run(run_level(addresses, dev, n, args.seconds))
            print(json.dumps(level, indent=2), flush=True)
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=60)


if __name__ == "__main__":
    main()
