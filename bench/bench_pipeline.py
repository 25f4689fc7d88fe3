"""Session pipeline bench (issue 5): the pipeline's own latency, barge-in, call setup, CPU per call.

    .venv/bin/python bench/bench_pipeline.py --calls 10 50 100 --seconds 30

Starts the embedded broker and PostgreSQL, the offline Gemini stand-in (`python -m streams.standin
--pace 0 --timings`: it answers instantly and records, on the machine's monotonic clock, when each
caller audio chunk arrived and each model audio chunk left), one edge node (`EdgeServer` on uvloop
in its own process, as `python -m edge` runs it) and one session worker (`python -m streams`).
This process is the Twilio side: N raw-socket Media Streams clients that send a 20 ms μ-law frame
every 20 ms (espeak speech or silence) and timestamp every frame they send and receive.

Per call: Twilio `start` → greeting; then turns: the caller speaks, the agent answers; every
second answer the caller talks over the agent (barge-in) and that speech is its next turn.

Figures (all on CLOCK_MONOTONIC, comparable across processes on one machine):

- uplink: caller frame sent → the same audio received by the stand-in (the k-th 640-byte PCM16
  chunk the stand-in receives is the k-th frame sent: the edge bridges frames 1:1 and the worker
  sends one realtime input per bridge frame; checked by counting);
- downlink: the stand-in sends the first audio chunk of an answer → its first Twilio frame
  arrives (later chunks of an instant answer only queue behind it for real-time play-out);
- barge-in: the first speech frame of a barge-in sent → `clear` received. The edge VAD's own
  onset delay for that very audio is computed offline by feeding the same frames through the
  edge's `MediaSession` (onset frames + minimum speech before a barge-in), so the pipeline's
  share is `clear - sent[decision frame]`;
- setup: each call is answered (`POST /twilio/voice`, which pre-warms its session), then its
  stream starts `--stream-delay-ms` later (Twilio's own gap between the TwiML and the stream's
  `start`; 300 ms assumed by default). Reported: `start` sent → the greeting's first Twilio frame,
  and when the session opened and the greeting's audio left the stand-in, relative to `start`
  (negative: ready before the stream);
- CPU: process time of edge, worker and broker over the window when all N calls are live.

`--profile S` also samples the worker, edge and stand-in with py-spy for S seconds of each
level's window and prints self time by library and by function. Results: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import uvloop
from bench_edge import _ws_connect, _WsClient
from latency import Latencies
from latency import stats as _stats
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from edge.audio.speech import synthesize, to_rate
from edge.protocol import Media
from edge.server import EdgeServer
from edge.session import MediaSession, SessionConfig
from edge.telephony import RecordingTelephony
from edge.twiml import media_stream_url
from infra.migrate import upgrade_database
from infra.process import free_port
from infra.settings import Settings
from infra.stack import running_stack
from infra.topics import ensure_topics
from voiceagent.caller import SILENCE, to_frames

sys.path.insert(0, str(Path(__file__).parents[1]))  # the repo root, for the shared test support
from tests.support.agents import agent_config, publish, version_published
from tests.support.workers import start_streams_worker

ROOT = Path(__file__).parents[1]
TOKEN = "bench-pipeline-token"
TENANT, NUMBER = "tenant-bench", "+15550009999"
PHRASES = ["Hello, are you open today?", "Can I book a table for two?", "What is on the menu tonight?"]
SHORT_REPLY = "Sure, one moment please."
LONG_REPLY = (
    "Certainly. This is the offline stand-in answering your question about the booking, "
    "and it goes on for a few seconds so that you can talk over it."
)
GREETING = "Hello, thanks for calling."


# --- the platform --------------------------------------------------------------------------------


def _edge_process(settings: Settings, commands: Any, out: Any) -> None:
    """The edge exactly as `python -m edge` runs it (EdgeServer on uvloop), plus a report channel."""

    async def run() -> None:
        server = EdgeServer(settings, telephony=RecordingTelephony())
        await server.start()
        out.put("ready")
        while True:
            command = await asyncio.to_thread(commands.get)
            if command == "reset":
                server.metrics.bridge_latency_s.clear()
            elif command == "report":
                inside = np.array(server.metrics.bridge_latency_s) * 1000
                out.put(
                    {
                        "inside_edge_ms": _stats(inside),
                        "counters": server.metrics.snapshot(),
                        "live": len(server.node.calls),
                    }
                )
            else:
                break
        await server.drain(deadline_s=0)
        await server.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())


@dataclass
class Platform:
    settings: Settings
    edge_settings: Settings
    standin_control: str
    data_dir: Path
    edge_pid: int
    worker_pids: list[int]
    broker_pid: int
    database_pid: int
    standin_pid: int
    edge_commands: Any
    edge_out: Any


def _start_standin(
    data_dir: Path, pace: float, latency_ms: int
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.standin",
            "--pace",
            str(pace),
            "--timings",
            "--latency-ms",
            str(latency_ms),
            "--cert-dir",
            str(data_dir / "certs"),
        ],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=(data_dir / "standin.log").open("ab"),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    found = dict(re.findall(r"(\w+)=(\S+)", line))
    if "control_url" not in found:
        raise SystemExit(f"the stand-in did not start: {line!r}; see {data_dir / 'standin.log'}")
    return proc, found


def _start_worker(
    settings: Settings, standin: dict[str, str], data_dir: Path, app_id: str, n: int, *, prewarm: bool
) -> subprocess.Popen[bytes]:
    return start_streams_worker(
        settings,
        data_dir / f"worker-{n}.log",
        app_id=app_id,  # one consumer group: the workers split the call partitions
        worker_id=f"bench-worker-{n}",
        gemini_base_url=standin["base_url"],
        gemini_ca_file=standin["ca_file"],
        extra_env={"VOICE_LOG_LEVEL": "WARNING", "VOICE_STREAMS__PREWARM_SESSIONS": str(prewarm).lower()},
    )


async def _publish_agent(settings: Settings, agent_id: str) -> None:
    config = agent_config(
        NUMBER,
        system_prompt="You are the booking line of Chez Bench.",
        greeting=GREETING,
        model="gemini-live-bench",
        max_duration_s=3600,
        max_concurrent_calls=1000,
    )
    event = version_published(TENANT, agent_id, config, correlation_id="bench-pipeline")
    await publish(settings.kafka, event)


# --- the Twilio side -----------------------------------------------------------------------------


@dataclass
class Phrase:
    frames: list[str]  # base64 payloads
    vad_decision: int  # index of the frame on which the edge decides "barge-in" (offline replay)


def _vad_decision_frame(frames: list[bytes], settings: Settings) -> int:
    """The edge's own barge-in decision point for this audio: onset + minimum speech (offline)."""
    edge = settings.edge
    session = MediaSession(
        SessionConfig(
            vad_aggressiveness=edge.vad_aggressiveness,
            vad_onset_frames=edge.vad_onset_frames,
            vad_hangover_frames=edge.vad_hangover_frames,
            barge_in_min_speech_ms=edge.barge_in_min_speech_ms,
        )
    )
    lead = 50
    for i, frame in enumerate([SILENCE] * lead + frames):
        media = Media(
            sequence_number=None,
            stream_sid="x",
            track="inbound",
            chunk=None,
            timestamp_ms=i * 20,
            payload=frame,
        )
        now = 1e9 + i * 20.0
        session.last_agent_frame_ms = now  # the agent is playing
        if session.on_media(media, now_ms=now).barge_in and i >= lead:
            return i - lead
    raise SystemExit("the edge VAD never hears this phrase as a barge-in")


class SimCall:
    """One Twilio Media Streams client; every frame sent and received is timestamped."""

    def __init__(self, index: int, call_id: str, params: dict[str, str]) -> None:
        self.index = index
        self.call_id = call_id
        self.params = params
        self.stream_sid = f"MZ{uuid.uuid4().hex}"
        self.sent_at: list[float] = []
        self.heard: list[float] = []
        self.clears: list[float] = []
        self.marks: list[float] = []
        self.queue: deque[str] = deque()
        self.start_at = 0.0
        self.ws: _WsClient | None = None
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.drained: asyncio.Future[None] | None = None
        self.barge_ins: list[tuple[int, int]] = []  # (index of the first speech frame, VAD decision offset)
        self.turns = 0
        self.timeouts = 0
        self.error: str | None = None
        self.live = False
        self.seq = 0

    def _notify(self, kind: str, now: float) -> None:
        waiter = self.waiters.pop(kind, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)

    def on_message(self, opcode: int, buffer: bytearray, start: int, end: int) -> None:
        now = time.monotonic()
        if b'"event":"media"' in buffer[start : start + 20]:
            self.heard.append(now)
            if self.waiters:
                self._notify("heard", now)
            return
        body = json.loads(bytes(buffer[start:end]))
        event = body.get("event")
        if event == "clear":
            self.clears.append(now)
            self._notify("clears", now)
        elif event == "mark":
            self.marks.append(now)
            self._notify("marks", now)
            self._send({"event": "mark", "streamSid": self.stream_sid, "mark": body.get("mark", {})})

    def _send(self, body: dict[str, Any]) -> None:
        self.seq += 1
        body["sequenceNumber"] = str(self.seq)
        assert self.ws is not None
        self.ws.send(0x1, json.dumps(body).encode())

    def send_frame(self, silence: str) -> None:
        n = len(self.sent_at)
        payload = self.queue.popleft() if self.queue else silence
        self.seq += 1
        text = (
            f'{{"event":"media","sequenceNumber":"{self.seq}","streamSid":"{self.stream_sid}",'
            f'"media":{{"track":"inbound","chunk":"{n + 1}","timestamp":"{n * 20}","payload":"{payload}"}}}}'
        )
        self.sent_at.append(time.monotonic())
        assert self.ws is not None
        self.ws.send(0x1, text.encode())
        if not self.queue and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    async def say(self, phrase: Phrase) -> int:
        """Queue the phrase; return the index its first frame will have; return once it is sent."""
        first = len(self.sent_at) + len(self.queue)
        self.queue.extend(phrase.frames)
        self.drained = asyncio.get_running_loop().create_future()
        await self.drained
        return first

    async def wait(self, kind: str, after: float, within: float) -> float | None:
        times: list[float] = getattr(self, kind)
        i = bisect.bisect_right(times, after)
        if i < len(times):
            return times[i]
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[kind] = waiter
        try:
            return await asyncio.wait_for(waiter, within)
        except TimeoutError:
            self.timeouts += 1
            return None

    def stop(self) -> None:
        if self.ws is None:
            return
        with contextlib.suppress(Exception):
            self._send(
                {
                    "event": "stop",
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": "AC", "callSid": self.call_id},
                }
            )
        self.ws.close()


async def _pace(calls: list[SimCall], silence: str, stop: asyncio.Event) -> None:
    """Every live call sends a frame every 20 ms; calls are spread over ten 2 ms phases."""
    begin, tick = time.monotonic(), 0
    while not stop.is_set():
        await asyncio.sleep(max(0.0, begin + tick * 0.002 - time.monotonic()))
        for call in calls[tick % 10 :: 10]:
            if call.live:
                call.send_frame(silence)
        tick += 1


async def _answer_inbound(client: httpx.AsyncClient, edge_url: str) -> dict[str, str]:
    url = edge_url + "/twilio/voice"
    form = {
        "CallSid": "CA" + uuid.uuid4().hex,
        "From": "+15550001234",
        "To": NUMBER,
        "AccountSid": "AC" + "0" * 32,
    }
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    response = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    response.raise_for_status()
    return dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)"', response.text))


async def open_stream(call: SimCall, media_url: str, signature: str) -> None:
    """Connect the call's Media Stream as Twilio does (`connected`, `start`); the pacer then
    sends its frames (``call.live``)."""
    call.ws = await _ws_connect(media_url, {"X-Twilio-Signature": signature}, call.on_message)
    call.ws.send(0x1, json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}).encode())
    call.start_at = time.monotonic()
    call._send(
        {
            "event": "start",
            "streamSid": call.stream_sid,
            "start": {
                "streamSid": call.stream_sid,
                "accountSid": "AC" + "0" * 32,
                "callSid": "CA" + call.call_id[-12:],
                "tracks": ["inbound"],
                "customParameters": call.params,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )
    call.live = True


async def _run_call(
    call: SimCall,
    media_url: str,
    signature: str,
    phrases: list[Phrase],
    end_at: float,
    greeted: asyncio.Event,
) -> None:
    await open_stream(call, media_url, signature)
    try:
        first = await call.wait("heard", call.start_at, 30)
        if first is None:
            call.error = "no greeting"
            return
        await call.wait("marks", first, 15)  # the greeting has been played
        greeted.set()
        need_say, barge = True, False
        rng = random.Random(call.index)
        while time.monotonic() < end_at - 2:
            if need_say:
                await asyncio.sleep(rng.uniform(0.2, 0.5))
                await call.say(phrases[call.turns % len(phrases)])
                call.turns += 1
            reply = await call.wait("heard", time.monotonic(), 10)
            if reply is None:
                need_say, barge = True, False
                continue
            if barge:
                await asyncio.sleep(rng.uniform(0.3, 0.7))
                phrase = phrases[call.turns % len(phrases)]
                index = await call.say(phrase)
                call.barge_ins.append((index, phrase.vad_decision))
                call.turns += 1
                need_say, barge = False, False  # the barge-in is the caller's next turn
            else:
                await call.wait("marks", reply, 15)
                need_say, barge = True, True
    except Exception as err:  # a failed call is a finding, not a crash of the bench
        call.error = f"{type(err).__name__}: {err}"
    finally:
        call.live = False
        call.stop()


# --- analysis ------------------------------------------------------------------------------------


def _analyse(
    calls: list[SimCall], timings: dict[str, dict[str, Any]], window: tuple[float, float]
) -> dict[str, Any]:
    found = Latencies()
    barge_total, barge_pipeline, barge_vad = [], [], []
    setup: dict[str, list[float]] = {k: [] for k in ("session_open", "greeting_audio_left_standin")}
    setup_first: list[float] = []
    missing_clear = 0
    for call in calls:
        timing = timings.get(call.call_id)
        if timing is None or not call.heard:
            continue
        sent = call.sent_at
        found.add_call(sent, call.heard, timing, window)
        firsts = [at for at, utterance, chunk in timing["audio_out"] if chunk == 0]
        if firsts:  # the greeting, ready before the stream when the session was pre-warmed
            setup["session_open"].append((timing["opened_at"] - call.start_at) * 1000)
            setup["greeting_audio_left_standin"].append((firsts[0] - call.start_at) * 1000)
            setup_first.append((call.heard[0] - call.start_at) * 1000)
        # barge-in: first speech frame sent -> clear received
        for index, decision in call.barge_ins:
            if index + decision >= len(sent):
                continue
            clear = next((c for c in call.clears if c > sent[index]), None)
            if clear is None or clear - sent[index] > 3.0:
                missing_clear += 1
                continue
            barge_total.append((clear - sent[index]) * 1000)
            barge_vad.append((sent[index + decision] - sent[index]) * 1000)
            barge_pipeline.append((clear - sent[index + decision]) * 1000)
    return {
        "uplink_ms": _stats(found.uplink_in_window),
        "uplink_ms_whole_call": _stats(found.uplink),
        "downlink_ms": _stats(found.downlink),
        "barge_in_ms": _stats(barge_total),
        "barge_in_vad_onset_ms": _stats(barge_vad),
        "barge_in_after_vad_decision_ms": _stats(barge_pipeline),
        "setup_start_to_first_frame_ms": _stats(setup_first),
        "setup_relative_to_start_p50_ms": {k: _stats(v).get("p50") for k, v in setup.items()},
        "setup_relative_to_start_p99_ms": {k: _stats(v).get("p99") for k, v in setup.items()},
        "uplink_chunks_unmatched": found.uplink_chunks_unmatched,
        "uplink_chunks_of_several_frames": found.uplink_chunks_of_several_frames,
        "answers_unmatched": found.answers_unmatched,
        "barge_ins_without_clear": missing_clear,
    }


def _cpu_s(pid: int, *, children: bool = False) -> float:
    """CPU seconds of a process, with its children for PostgreSQL (one backend per connection)."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        proc = psutil.Process(pid)
        for p in [proc, *(proc.children(recursive=True) if children else [])]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = p.cpu_times()
                total += times.user + times.system
    return total


_BUCKETS = (
    ("google/genai/", "google-genai"),
    ("pydantic", "pydantic"),
    ("websockets/", "websockets"),
    ("faust/", "faust"),
    ("mode/", "faust"),
    ("aiokafka/", "aiokafka"),
    ("kafka/", "aiokafka"),
    ("/ssl.py", "ssl"),
    ("json/", "json"),
    ("base64.py", "base64"),
    ("asyncio/", "asyncio"),
    ("uvloop", "asyncio"),
    ("/streams/", "our code"),
    ("/schemas/", "our code"),
    ("/edge/", "our code"),
    ("/infra/", "our code"),
    ("starlette/", "starlette/uvicorn"),
    ("uvicorn/", "starlette/uvicorn"),
    ("webrtcvad", "webrtcvad"),
)


def _profile_summary(path: Path, top: int = 12) -> dict[str, Any]:
    """Self time by library and by function, from py-spy's collapsed stacks (idle excluded)."""
    by_function: dict[str, int] = {}
    by_library: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        leaf = stack.rsplit(";", 1)[-1]
        total += count
        by_function[leaf] = by_function.get(leaf, 0) + count
        library = next((name for key, name in _BUCKETS if key in leaf), "other")
        by_library[library] = by_library.get(library, 0) + count
    share = {k: round(v / total * 100, 1) for k, v in sorted(by_library.items(), key=lambda kv: -kv[1])}
    functions = sorted(by_function.items(), key=lambda kv: -kv[1])[:top]
    return {
        "samples": total,
        "self_time_pct_by_library": share,
        "top_functions_pct": {k: round(v / total * 100, 1) for k, v in functions},
    }


def _start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    py_spy = str(Path(sys.executable).parent / "py-spy")
    argv = [py_spy, "record", "--nonblocking", "-r", "50", "-d", str(int(seconds)), "-f", "raw"]
    argv += ["-o", str(out), "-p", str(pid)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run_queue_s(pid: int) -> float:
    """Time the process's threads were runnable but waiting for a core (/proc/PID/task/*/schedstat)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


async def _run_level(
    platform: Platform,
    n: int,
    seconds: float,
    phrases: list[Phrase],
    silence: str,
    profile: float = 0.0,
    stream_delay_s: float = 0.3,
) -> dict[str, Any]:
    edge_url = platform.edge_settings.twilio.public_base_url
    media_url = media_stream_url(edge_url)
    signature = RequestValidator(TOKEN).compute_signature(media_url, {})
    ramp = max(1.0, n / 10)  # ten new calls a second
    async with httpx.AsyncClient(timeout=30) as client:
        turns = [
            {"caller": p, "reply": SHORT_REPLY if i % 2 == 0 else LONG_REPLY}
            for i, p in enumerate(PHRASES * 40)
        ]
        calls: list[SimCall] = []  # grows as calls are answered; the pacer reads it as it is
        stop = asyncio.Event()
        pacer = asyncio.create_task(_pace(calls, silence, stop))
        begin = time.monotonic()
        end_at = begin + ramp + 8 + seconds
        greeted = [asyncio.Event() for _ in range(n)]

        async def answer_then_stream(i: int) -> None:
            # Twilio's order: the voice webhook (the session is pre-warmed from here), then,
            # once Twilio has read the TwiML and reached the edge, the media stream.
            await asyncio.sleep(max(0.0, begin + i * ramp / n - time.monotonic()))
            params = await _answer_inbound(client, edge_url)
            call = SimCall(i, params["call_id"], params)
            calls.append(call)
            script = {"turns": turns, "greeting": GREETING}
            await client.put(f"{platform.standin_control}/scripts/{call.call_id}", json=script)
            await asyncio.sleep(max(0.0, stream_delay_s - (time.monotonic() - begin - i * ramp / n)))
            await _run_call(call, media_url, signature, phrases, end_at, greeted[i])

        tasks = [asyncio.create_task(answer_then_stream(i)) for i in range(n)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(g.wait() for g in greeted)), 30)
        await asyncio.sleep(1.0)
        window_start = time.monotonic()
        pids = {
            "edge": platform.edge_pid,
            "worker": platform.worker_pids[0],
            "broker": platform.broker_pid,
            "database": platform.database_pid,
            "standin": platform.standin_pid,
            "simulator": os.getpid(),
        }
        platform.edge_commands.put("reset")
        others = platform.worker_pids[1:]  # counted as "worker": the session workers together
        cpu0 = {k: _cpu_s(p, children=k == "database") for k, p in pids.items()}
        wait0 = {k: _run_queue_s(p) for k, p in pids.items()}
        cpu0["worker"] += sum(_cpu_s(p) for p in others)
        wait0["worker"] += sum(_run_queue_s(p) for p in others)
        profilers = {}
        if profile > 0:  # py-spy, sampling without stopping the process (it costs some CPU)
            for name in ("worker", "edge", "standin"):
                out = platform.data_dir / f"profile-{name}-{n}.txt"
                profilers[name] = (_start_profiler(pids[name], profile, out), out)
        load_during = []
        while time.monotonic() < end_at - 2.5:
            await asyncio.sleep(1.0)
            load_during.append(os.getloadavg()[0])
        window_end = time.monotonic()
        cpu1 = {k: _cpu_s(p, children=k == "database") for k, p in pids.items()}
        wait1 = {k: _run_queue_s(p) for k, p in pids.items()}
        cpu1["worker"] += sum(_cpu_s(p) for p in others)
        wait1["worker"] += sum(_run_queue_s(p) for p in others)
        platform.edge_commands.put("report")
        edge_report = await asyncio.to_thread(platform.edge_out.get)
        live = sum(1 for c in calls if c.live)
        await asyncio.gather(*tasks)
        stop.set()
        await pacer
        await asyncio.sleep(2.0)
        answers = await asyncio.gather(
            *(client.get(f"{platform.standin_control}/timings", params={"key": c.call_id}) for c in calls)
        )
    timings = {}
    for call, answer in zip(calls, answers, strict=True):
        sessions = answer.json()
        if sessions:
            timings[call.call_id] = sessions[0]
    wall = window_end - window_start
    cpu = {k: (cpu1[k] - cpu0[k]) / wall * 100 for k in pids}
    pipeline_cpu = cpu["edge"] + cpu["worker"] + cpu["broker"]
    result: dict[str, Any] = {
        "calls": n,
        "session_workers": len(platform.worker_pids),
        "live_in_window": live,
        "window_s": round(wall, 1),
        "failed_calls": sum(1 for c in calls if c.error),
        "errors": sorted({c.error for c in calls if c.error})[:3],
        "turns": sum(c.turns for c in calls),
        "wait_timeouts": sum(c.timeouts for c in calls),
        **_analyse(calls, timings, (window_start, window_end - 1.0)),
        "inside_edge_uplink_ms": edge_report["inside_edge_ms"],
        "cpu_pct_of_one_core": {k: round(v, 1) for k, v in cpu.items()},
        "waiting_for_a_core_pct": {k: round((wait1[k] - wait0[k]) / wall * 100, 1) for k in pids},
        "pipeline_cpu_pct": round(pipeline_cpu, 1),
        "pipeline_cpu_ms_per_call_second": round(pipeline_cpu * 10 / n, 2),
        "load_avg_1m": round(float(np.mean(load_during)), 2) if load_during else None,
        "edge_counters": {k: v for k, v in edge_report["counters"].items() if v},
    }
    for name, (proc, out) in profilers.items():
        await asyncio.to_thread(proc.wait, 60)
        if out.exists():
            result[f"profile_{name}"] = _profile_summary(out)
    return result


def _table(results: list[dict[str, Any]]) -> str:
    def pp(stats: dict[str, Any]) -> str:
        return f"{stats.get('p50', '-')} / {stats.get('p99', '-')}" if stats.get("n") else "-"

    lines = [
        "| calls | uplink p50/p99 | downlink p50/p99 | barge-in p50/p99 (after VAD decision) "
        "| session open vs start p50 | start→first frame p50/p99 | CPU edge / worker / broker (% core) "
        "| per call-second |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cpu = r["cpu_pct_of_one_core"]
        lines.append(
            f"| {r['calls']} | {pp(r['uplink_ms'])} | {pp(r['downlink_ms'])} | {pp(r['barge_in_ms'])} "
            f"({pp(r['barge_in_after_vad_decision_ms'])}) | "
            f"{r['setup_relative_to_start_p50_ms']['session_open']} | "
            f"{pp(r['setup_start_to_first_frame_ms'])} | {cpu['edge']} / {cpu['worker']} / {cpu['broker']} | "
            f"{r['pipeline_cpu_ms_per_call_second']} ms |"
        )
    return "\n".join(lines)


async def _wait_for_edge(platform: Platform) -> None:
    edge_url = platform.edge_settings.twilio.public_base_url
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(edge_url + "/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit("the edge did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--seconds", type=float, default=30.0, help="steady window per level")
    parser.add_argument("--pace", type=float, default=0.0, help="stand-in pace: 0 answers instantly")
    parser.add_argument("--workers", type=int, default=1, help="session worker processes (one group)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--model-latency-ms",
        type=int,
        default=0,
        help="the stand-in's setup and time to first audio (0: instant); a real model's cost a call",
    )
    parser.add_argument(
        "--no-prewarm", action="store_true", help="sessions open with the stream, as before pre-warm"
    )
    parser.add_argument(
        "--stream-delay-ms",
        type=float,
        default=300.0,
        help="from a call's voice webhook to its stream's start (Twilio reading the TwiML and "
        "connecting); the session is pre-warmed in between",
    )
    parser.add_argument(
        "--profile", type=float, default=0.0, help="py-spy the worker, edge and stand-in for this many s"
    )
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    base = Settings(env="test", data_dir=data_dir, log_level="WARNING")
    # 6 partitions: calls split evenly over 1, 2 or 3 session workers
    base = base.model_copy(update={"kafka": base.kafka.model_copy(update={"partitions_override": 6})})
    print(f"data and logs (kept for inspection; delete when done): {data_dir}", flush=True)
    with running_stack(base, durable=False) as stack:
        settings = stack.settings
        asyncio.run(ensure_topics(settings.kafka))
        upgrade_database(settings.database)
        agent_id = f"agent-{uuid.uuid4().hex[:8]}"
        asyncio.run(_publish_agent(settings, agent_id))
        port = free_port()
        edge_settings = settings.model_copy(
            update={
                "edge": settings.edge.model_copy(
                    update={
                        "port": port,
                        "bridge_port": free_port(),
                        "max_streams": 1000,
                        "recordings_dir": data_dir / "rec",
                    }
                ),
                "twilio": settings.twilio.model_copy(
                    update={"public_base_url": f"http://127.0.0.1:{port}", "auth_token": SecretStr(TOKEN)}
                ),
            }
        )
        standin, addresses = _start_standin(data_dir, args.pace, args.model_latency_ms)
        ctx = multiprocessing.get_context("spawn")
        commands, out = ctx.Queue(), ctx.Queue()
        edge = ctx.Process(target=_edge_process, args=(edge_settings, commands, out))
        edge.start()
        app_id = f"bench-{uuid.uuid4().hex[:6]}"
        workers = [
            _start_worker(settings, addresses, data_dir, app_id, n, prewarm=not args.no_prewarm)
            for n in range(args.workers)
        ]
        try:
            if out.get(timeout=120) != "ready":
                raise SystemExit("the edge did not start")
            phrases = []
            for text in PHRASES:
                frames = to_frames(to_rate(*synthesize(text), 8000))
                phrases.append(
                    Phrase(
                        frames=[base64.b64encode(f).decode() for f in frames],
                        vad_decision=_vad_decision_frame(frames, edge_settings),
                    )
                )
            silence = base64.b64encode(SILENCE).decode()
            platform = Platform(
                settings=settings,
                edge_settings=edge_settings,
                standin_control=addresses["control_url"],
                data_dir=data_dir,
                edge_pid=edge.pid or 0,
                worker_pids=[w.pid for w in workers],
                broker_pid=stack.services[0].pid,
                database_pid=stack.services[1].pid,
                standin_pid=standin.pid,
                edge_commands=commands,
                edge_out=out,
            )
            results = []
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(_wait_for_edge(platform))
                # Warm-up: the worker's partitions, TLS, the stand-in's speech cache.
                print("warm-up (2 calls)...", flush=True)
                runner.run(_run_level(platform, 2, 5.0, phrases, silence))
                for n in args.calls:
                    print(f"level {n} calls...", flush=True)
                    level = _run_level(
                        platform, n, args.seconds, phrases, silence, args.profile, args.stream_delay_ms / 1000
                    )
                    result = runner.run(level)
                    result["stream_delay_ms"] = args.stream_delay_ms
                    result["prewarm"] = not args.no_prewarm
                    result["model_latency_ms"] = args.model_latency_ms
                    print(json.dumps(result, indent=2), flush=True)
                    results.append(result)
            print(_table(results))
            if args.json is not None:
                args.json.write_text(json.dumps(results, indent=2))
        finally:
            commands.put("stop")
            edge.join(timeout=30)
            if edge.is_alive():
                edge.terminate()
            for proc in (*workers, standin):
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)


if __name__ == "__main__":
    main()
