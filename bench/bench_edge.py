"""Edge capacity bench: N concurrent simulated calls against one edge process (not a test).

The edge (EdgeServer, real Kafka producer on the embedded broker) runs in this process; the
simulated Twilio clients and bridge workers run in a child process, so the edge's CPU time is
measured alone. Each call sends 50 μ-law frames/s and its worker keeps agent audio queued, so
the edge also paces 50 frames/s back out. Latency is Twilio-frame-sent -> bridge-frame-received,
both timed in the client process (so it includes the client's own scheduling delay); and, the
issue's figure, arrival at the edge -> written to the bridge: the client's send time against the
moment the edge frames that audio for its bridge socket (CLOCK_MONOTONIC is one clock for both).

    .venv/bin/python bench/bench_edge.py --calls 200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import uvloop
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

import edge.call
import edge.wsframe
from edge.server import EdgeServer
from edge.telephony import RecordingTelephony
from edge.twiml import media_stream_url
from edge.wsframe import BINARY
from infra.kafka import make_consumer
from infra.process import free_port
from infra.settings import Settings
from infra.stack import running_stack
from infra.topics import ensure_topics
from schemas import bridge
from schemas.call_media import MediaStreamStarted
from schemas.catalog import CALL_INPUTS
from schemas.codec import Codec

TOKEN = "bench-token"
CALL_MS = 1_000_000
"""Call i's Twilio timestamps start at i * CALL_MS: unique across calls, within the header's u32."""
FRAME = bytes([0xFF]) * 80 + bytes([0x7F]) * 80


class _WsClient(asyncio.Protocol):
    """A minimal WebSocket client on a raw transport, so one core can simulate 200+ calls.

    Frames out are masked with the all-zero key (valid RFC 6455, no per-byte XOR); frames in
    are split by their headers and handed to ``on_message`` (pings are answered). The
    ``websockets`` client costs ~30 µs a message, too much for 30,000 messages a second.
    """

    def __init__(self, on_message: Any) -> None:
        self.transport: Any = None
        self.on_message = on_message
        self.buffer = bytearray()
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(ConnectionError(head[:60].decode(errors="replace")))
                return
            self.open.set_result(None)
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            opcode, length, header = buffer[pos] & 0x0F, buffer[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if size - pos < header + length:
                break
            start = pos + header
            pos = start + length
            if opcode == 0x9:
                self.send(0xA, bytes(buffer[start:pos]))
            elif opcode in (0x1, 0x2):
                self.on_message(opcode, buffer, start, pos)
        del buffer[:pos]

    def send(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = bytes((0x80 | opcode, 0x80 | size))
        elif size < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        self.transport.write(header + b"\0\0\0\0" + payload)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()


async def _ws_connect(url: str, headers: dict[str, str], on_message: Any) -> _WsClient:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: _WsClient(on_message), host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {parts.path or '/'} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    client.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await client.open
    return client


class _SimCall:
    """One simulated call: the Twilio side and the worker side, both in this process."""

    def __init__(self, index: int, stats: dict[str, Any]) -> None:
        self.index = index
        self.call_id = f"bench-{uuid.uuid4()}"
        self.stream_sid = f"MZ{index}"
        self.stats = stats
        self.sent: dict[int, float] = {}
        # Twilio timestamps unique across calls, so a bridge frame's header names its call too.
        self.base_ms = index * CALL_MS
        self.frames_sent = 0
        self.last_seq = -1
        self.twilio: _WsClient | None = None
        self.worker: _WsClient | None = None
        self.payload = base64.b64encode(FRAME).decode()

    def on_twilio(self, opcode: int, buffer: bytearray, start: int, end: int) -> None:
        self.stats["playback_frames"] += 1

    def on_worker(self, opcode: int, buffer: bytearray, start: int, end: int) -> None:
        if opcode != 0x2 or buffer[start] != bridge.CALLER_AUDIO:
            return
        now = time.monotonic()
        _, seq, stream_ms = bridge.HEADER.unpack_from(buffer, start)
        stats = self.stats
        if seq != self.last_seq + 1:
            stats["reordered_or_lost"] += 1
        self.last_seq = seq
        stats["bridge_frames"] += 1
        at = self.sent.pop(stream_ms, None)
        if at is not None:
            stats["latency"].append(now - at)

    def send_media(self) -> None:
        n = self.frames_sent
        self.frames_sent += 1
        stream_ms = self.base_ms + n * 20
        text = (
            f'{{"event":"media","sequenceNumber":"{n + 2}","streamSid":"{self.stream_sid}",'
            f'"media":{{"track":"inbound","chunk":"{n + 1}","timestamp":"{stream_ms}",'
            f'"payload":"{self.payload}"}}}}'
        )
        self.sent[stream_ms] = sent_at = time.monotonic()
        self.stats["sent_at"][self.index, n] = sent_at
        assert self.twilio is not None
        self.twilio.send(0x1, text.encode())


async def _open_call(
    call: _SimCall, media_url: str, grants: dict[str, tuple[str, str]], signature: str
) -> None:
    call.twilio = await _ws_connect(media_url, {"X-Twilio-Signature": signature}, call.on_twilio)
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": call.stream_sid,
        "start": {
            "streamSid": call.stream_sid,
            "callSid": f"CA{call.index}",
            "accountSid": "AC",
            "customParameters": {
                "call_id": call.call_id,
                "tenant_id": "t",
                "agent_id": "a",
                "agent_version": "1",
            },
        },
    }
    call.twilio.send(0x1, json.dumps(start).encode())
    while call.call_id not in grants:  # noqa: ASYNC110 - filled by the fact watcher task
        await asyncio.sleep(0.05)
    url, token = grants[call.call_id]
    call.worker = await _ws_connect(url, {bridge.TOKEN_HEADER: token}, call.on_worker)


async def _feed_agent(calls: list[_SimCall], seconds: float) -> None:
    """Every worker sends one second of agent audio a second (spread over the second)."""
    chunk = (np.sin(np.arange(24000) * 2 * np.pi * 440 / 24000) * 3000).astype("<i2").tobytes()
    for seq in range(int(seconds) + 1):
        for call in calls:
            assert call.worker is not None
            call.worker.send(0x2, bridge.encode_agent_audio(seq, chunk))
            await asyncio.sleep(1.0 / len(calls))


async def _send_media(calls: list[_SimCall], seconds: float, phases: int) -> None:
    """Each call sends a frame every 20 ms; the calls are spread over `phases` equal phases.

    Real calls start independently, so their frames interleave; a phase's calls send at once,
    a burst the edge works through one frame after another.
    """
    frames, period = int(seconds * 50), 0.020 / phases
    begin = time.monotonic()
    for tick in range(frames * phases + phases):
        await asyncio.sleep(max(0.0, begin + tick * period - time.monotonic()))
        for call in calls[tick % phases :: phases]:
            if call.frames_sent < frames:
                call.send_media()


async def _clients(calls: int, media_url: str, bootstrap: str, seconds: float, phases: int) -> dict[str, Any]:
    settings = Settings(env="test")
    kafka = settings.kafka.model_copy(update={"bootstrap": bootstrap})
    grants: dict[str, tuple[str, str]] = {}
    codec = Codec.single_object()
    consumer = make_consumer(kafka, CALL_INPUTS.name, group_id=None, auto_offset_reset="latest")
    await consumer.start()

    async def watch() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    fact = codec.decode(record.value or b"")
                    if isinstance(fact, MediaStreamStarted):
                        grants[fact.call_id] = (fact.bridge_url, fact.bridge_token)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(1.0)
    stats: dict[str, Any] = {
        "latency": [],
        "bridge_frames": 0,
        "playback_frames": 0,
        "reordered_or_lost": 0,
        "sent_at": _frame_times(calls, seconds),
    }
    signature = RequestValidator(TOKEN).compute_signature(media_url, {})
    sims = [_SimCall(i, stats) for i in range(calls)]
    await asyncio.gather(*(_open_call(call, media_url, grants, signature) for call in sims))
    feeder = asyncio.create_task(_feed_agent(sims, seconds))
    cpu0, wall0 = time.process_time(), time.monotonic()
    await _send_media(sims, seconds, phases)
    stats["cpu_share"] = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    await asyncio.sleep(0.5)
    feeder.cancel()
    for call in sims:
        assert call.twilio is not None
        stop = {"event": "stop", "sequenceNumber": str(call.frames_sent + 2), "streamSid": call.stream_sid}
        call.twilio.send(0x1, json.dumps(stop).encode())
    await asyncio.sleep(0.5)
    for call in sims:
        assert call.twilio is not None
        assert call.worker is not None
        call.worker.close()
        call.twilio.close()
    watcher.cancel()
    await consumer.stop()
    return stats


def _client_process(
    calls: int, media_url: str, bootstrap: str, seconds: float, phases: int, out: Any
) -> None:
    os.sched_setaffinity(0, {1})
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        out.put(runner.run(_clients(calls, media_url, bootstrap, seconds, phases)))


async def _loop_lag_probe(lags: list[float]) -> None:
    """How late a 1 ms timer runs: how long a frame that just arrived waits for the edge's loop."""
    while True:
        due = time.perf_counter() + 0.001
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - due)


def _run_queue_wait_s() -> float:
    """Time this process's threads were runnable but not running (another task had the core)."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def _frame_times(calls: int, seconds: float) -> Any:
    """A time per (call, frame), NaN until set; allocated and touched up front, so that
    recording one costs no allocation (a growing dict's resize stalled the loop it measured)."""
    return np.full((calls, int(seconds * 50) + 50), np.nan)


def _stamp_bridge_writes(written: Any) -> None:
    """Note when each caller frame is framed for its bridge socket, by its (call-unique) stream ms.

    Wraps the frame builder the edge's direct write path calls just before ``transport.write``;
    frames that take the pump's slower path (a full socket) are not stamped and are counted.
    """
    build = edge.wsframe.server_frame

    def stamped(opcode: int, data: bytes) -> bytes:
        if opcode == BINARY and data[0] == bridge.CALLER_AUDIO:
            call, ms = divmod(bridge.HEADER.unpack_from(data)[2], CALL_MS)
            written[call, ms // 20] = time.monotonic()
        return build(opcode, data)

    setattr(edge.call, "server_frame", stamped)  # noqa: B010 - the name edge.call looks up per write


def _arrival_to_bridge_ms(sent_at: Any, written: Any, start: float, end: float) -> Any:
    """Per frame sent in [start, end) and stamped: its bridge write time minus its send time, in ms."""
    chosen = (sent_at >= start) & (sent_at < end) & ~np.isnan(written)
    return (written[chosen] - sent_at[chosen]) * 1000


async def _run_edge(
    settings: Settings, calls: int, seconds: float, phases: int = 10, dump: Path | None = None
) -> None:
    os.sched_setaffinity(0, {0})
    written = _frame_times(calls, seconds)
    _stamp_bridge_writes(written)
    server = EdgeServer(settings, telephony=RecordingTelephony())
    await server.start()
    queue: Any = multiprocessing.get_context("spawn").Queue()
    media_url = media_stream_url(settings.twilio.public_base_url)
    assert settings.kafka.bootstrap is not None
    child = multiprocessing.get_context("spawn").Process(
        target=_client_process, args=(calls, media_url, settings.kafka.bootstrap, seconds, phases, queue)
    )
    child.start()
    while len(server.node.calls) < calls:  # noqa: ASYNC110 - counts sockets the server accepts
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # everyone connected and playing
    lags: list[float] = []
    probe = asyncio.create_task(_loop_lag_probe(lags))
    pauses: list[float] = []
    generations: list[int] = []
    started: list[float] = [0.0]

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])
            generations.append(info["generation"])

    gc.callbacks.append(gc_timer)
    cpu0, wall0, waited0 = time.process_time(), time.monotonic(), _run_queue_wait_s()
    await asyncio.sleep(seconds - 4.0)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    window = (wall0, wall0 + wall)
    waited = _run_queue_wait_s() - waited0
    probe.cancel()
    gc.callbacks.remove(gc_timer)
    live = list(server.node.calls.values())
    played = sum(call.session.playback.frames_sent for call in live)
    queued = sum(call.session.playback.audio_queued for call in live)
    print(f"at the window's end: {len(live)} calls, {played} frames played, {queued} queued")
    stats = await asyncio.to_thread(queue.get)
    child.join()
    await server.drain(deadline_s=2)
    await server.stop()
    latency = np.array(stats["latency"]) * 1000
    expected = calls * int(seconds * 50)
    print(f"calls={calls} seconds={seconds} phases={phases}")
    share = cpu / wall
    print(f"edge CPU: {share * 100:.1f}% of one core; {share / calls * 1000:.2f} ms CPU per call-second")
    print(
        f"edge runnable but waiting for its core (other processes): {waited / wall * 100:.1f}% of the window"
    )
    p50, p99 = np.percentile(latency, 50), np.percentile(latency, 99)
    print(f"frame-in -> bridge-out latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    sent_at = stats["sent_at"]
    arrival = _arrival_to_bridge_ms(sent_at, written, *window)
    in_window = int(((sent_at >= window[0]) & (sent_at < window[1])).sum())
    if dump is not None:  # (send time, arrival -> bridge ms) per frame, for a look at the tail
        call, frame = np.nonzero(~np.isnan(sent_at) & ~np.isnan(written))
        at = sent_at[call, frame]
        rows = np.column_stack([at, (written[call, frame] - at) * 1000, call * CALL_MS + frame * 20])
        np.save(dump, rows[np.argsort(at)])
    if arrival.size:
        a50, a99, a999 = np.percentile(arrival, [50, 99, 99.9])
        print(
            f"  arrival at the edge -> written to the bridge (issue 3's figure): p50 {a50:.2f} ms,"
            f" p99 {a99:.2f} ms, p99.9 {a999:.2f} ms, max {arrival.max():.2f} ms"
            f" ({arrival.size} of {in_window} frames in the window; the rest took the pump's path)"
        )
    edge_side = (
        np.array(getattr(server.metrics, "bridge_latency_s", [])) * 1000
    )  # absent before issue 3's fix
    if edge_side.size:
        e50, e99 = np.percentile(edge_side, 50), np.percentile(edge_side, 99)
        print(
            f"  inside the edge (frame received -> bridge frame written): p50 {e50:.2f} ms, p99 {e99:.2f} ms"
        )
    lag = np.array(lags) * 1000
    l50, l99 = np.percentile(lag, 50), np.percentile(lag, 99)
    print(f"  edge loop lag (a frame waits this long to be read): p50 {l50:.2f} ms, p99 {l99:.2f} ms")
    gc_ms = np.array(pauses or [0.0]) * 1000
    print(f"  edge GC: {len(pauses)} collections, {gc_ms.sum():.0f} ms in all, longest {gc_ms.max():.2f} ms")
    for generation in sorted(set(generations)):
        mine = gc_ms[: len(generations)][np.array(generations) == generation]
        print(f"    generation {generation}: {mine.size}, {mine.sum():.0f} ms, longest {mine.max():.2f} ms")
    print(f"simulator CPU: {stats['cpu_share'] * 100:.1f}% of its core")
    print(f"bridge frames {stats['bridge_frames']} of {expected}; gaps/reorders {stats['reordered_or_lost']}")
    expected_out = calls * (seconds - 1) * 50
    print(f"playback frames received {stats['playback_frames']} (expected about {expected_out:.0f})")
    print(f"edge counters: {server.metrics.snapshot()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--asyncio", action="store_true", help="run the edge on the stock asyncio loop")
    parser.add_argument(
        "--phases", type=int, default=10, help="the calls' frames go out in this many bursts per 20 ms"
    )
    parser.add_argument("--dump", type=Path, default=None, help="save per frame: sent at, ms, stream ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as data_dir:
        _bench(Settings(env="test", data_dir=Path(data_dir), log_level="WARNING"), args)


def _bench(base: Settings, args: argparse.Namespace) -> None:
    base = base.model_copy(update={"kafka": base.kafka.model_copy(update={"partitions_override": 3})})
    with running_stack(base, durable=False) as stack:
        asyncio.run(ensure_topics(stack.settings.kafka))
        port = free_port()
        settings = stack.settings.model_copy(
            update={
                "edge": stack.settings.edge.model_copy(
                    update={"port": port, "bridge_port": free_port(), "max_streams": args.calls + 10}
                ),
                "twilio": stack.settings.twilio.model_copy(
                    update={"public_base_url": f"http://127.0.0.1:{port}", "auth_token": SecretStr(TOKEN)}
                ),
            }
        )
        # The edge's event loop as `python -m edge` runs it (uvloop), unless --asyncio.
        factory = None if args.asyncio else uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_run_edge(settings, args.calls, args.seconds, args.phases, args.dump))


if __name__ == "__main__":
    main()
