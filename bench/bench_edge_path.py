"""CPU per 20 ms frame on the edge's own code path, without sockets or a scheduler (not a test).

``bench_edge.py`` measures the node end to end, where the machine's speed and the kernel's
socket work move the figures by many points between runs. This one times the Python path
alone, in one process, with the CPU clock: a Twilio ``media`` frame as the socket delivers it
(masked WebSocket frame, JSON, base64 μ-law of espeak speech) through
``MediaStreamProtocol.data_received`` to the bridge frame handed to the worker's transport; and
a playback frame from the queue (agent audio enqueued a second at a time through the bridge's
``apply_directive``) to the Twilio frame handed to the transport. Transports are counters,
so no syscall is timed. Best of ``--runs``.

    .venv/bin/python bench/bench_edge_path.py [--frames 10000] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.frames import Frame, Opcode
from websockets.protocol import State

from edge import protocol
from edge.audio import mulaw
from edge.audio.speech import synthesize, to_rate
from edge.bridge_server import apply_directive
from edge.media_protocol import MediaStreamProtocol
from edge.node import EdgeNode
from edge.playback import AudioItem
from edge.publisher import RecordingPublisher
from edge.signature import SignatureChecker
from edge.telephony import RecordingTelephony
from edge.twiml import media_stream_url
from infra.settings import Settings
from schemas import bridge
from voiceagent.caller import SimulatedCaller

TOKEN = "bench-token"
HOST = "edge.example.com"
PUBLIC = f"https://{HOST}"
MEDIA_URL = media_stream_url(PUBLIC)


class CountingTransport:
    """An asyncio transport that only counts what it is given."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def client_frame(message: dict[str, Any]) -> bytes:
    """``message`` as Twilio's client puts it on the socket: a masked, final text frame."""
    return Frame(Opcode.TEXT, json.dumps(message).encode()).serialize(mask=True)


def caller_frames(caller: SimulatedCaller, count: int) -> list[bytes]:
    """``count`` media frames of espeak speech and the pauses between its sentences, in order."""
    samples, rate = synthesize("Hello, I would like to ask about a refund for my last order. Thank you.")
    speech = to_rate(samples, rate, 8000)
    pause = np.zeros(8000, dtype=np.int16)  # a second of silence after each sentence
    audio = np.concatenate([speech, pause])
    frames: list[bytes] = []
    for n in range(count):
        start = (n * 160) % (len(audio) - 160)
        frames.append(client_frame(caller.media_frame(mulaw.encode(audio[start : start + 160]))))
    return frames


def open_stream(node: EdgeNode, caller: SimulatedCaller) -> tuple[MediaStreamProtocol, CountingTransport]:
    """A media socket after a signed upgrade and Twilio's ``start``, with a worker on the bridge."""
    checker = SignatureChecker(TOKEN, PUBLIC)
    config = SimpleNamespace(ws_max_size=1 << 20, ws_ping_interval=None)
    media = MediaStreamProtocol.bound(node, checker)(config, SimpleNamespace(connections=set()), {})
    media.connection_made(CountingTransport())  # type: ignore[arg-type]
    key = base64.b64encode(os.urandom(16)).decode()
    media.data_received(
        (
            f"GET /twilio/media HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"X-Twilio-Signature: {caller.signature}\r\n\r\n"
        ).encode()
    )
    parameters = {"call_id": "call-1", "tenant_id": "t1", "agent_id": "a1", "agent_version": "1"}
    media.data_received(client_frame(caller.start_frame(parameters)))
    assert media.media is not None, "the upgrade was refused"
    assert media.media.call is not None, "the stream did not start"
    worker_transport = CountingTransport()
    worker: Any = SimpleNamespace(
        transport=worker_transport, protocol=SimpleNamespace(state=State.OPEN, data_to_send=list)
    )
    media.media.call.attach_worker(worker)
    return media, worker_transport


def inbound(media: MediaStreamProtocol, frames: list[bytes]) -> float:
    """µs of CPU per caller frame, socket bytes in to bridge frame out."""
    started = time.process_time()
    for frame in frames:
        media.data_received(frame)
    return (time.process_time() - started) / len(frames) * 1e6


async def outbound(media: MediaStreamProtocol, frames: int) -> float:
    """µs of CPU per playback frame: queue to Twilio frame out (enqueue of the agent's audio included)."""
    assert media.media is not None
    assert media.media.call is not None
    call = media.media.call
    playback = call.session.playback
    second = (np.sin(np.arange(24000) * 0.05) * 8000).astype(np.int16).tobytes()
    sent = 0
    started = time.process_time()
    while sent < frames:
        await apply_directive(call, bridge.AgentAudio(seq=sent, pcm=second))
        while (item := playback.pop()) is not None:
            if isinstance(item, AudioItem):
                await call.send_twilio(protocol.media_message(call.stream_sid, item.mulaw))
                sent += 1
    return (time.process_time() - started) / sent * 1e6


async def bench(args: argparse.Namespace) -> None:
    threadpool_limits(limits=1, user_api="blas")  # as EdgeServer.start does: no BLAS thread pool
    node = EdgeNode(Settings(env="test"), publisher=RecordingPublisher(), telephony=RecordingTelephony())
    # The product's simulated Twilio client builds the messages; it is never connected here.
    caller = SimulatedCaller(MEDIA_URL, TOKEN, stream_sid="MZ1", call_sid="CA1")
    media, worker = open_stream(node, caller)
    frames = caller_frames(caller, args.frames * (args.runs + 1))
    runs = [frames[i * args.frames : (i + 1) * args.frames] for i in range(args.runs + 1)]
    inbound(media, runs[0])  # warm-up
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    caller = min(inbound(media, run) for run in runs[1:])
    playback = min([await outbound(media, args.frames) for _ in range(args.runs)])
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    assert worker.writes == len(frames), f"{worker.writes} bridge frames for {len(frames)} caller frames"
    print(f"caller frame, socket bytes -> bridge frame: {caller:.1f} µs CPU (best of {args.runs})")
    print(f"playback frame, queue -> Twilio frame:      {playback:.1f} µs CPU (best of {args.runs})")
    print(f"both directions of one call-second (50 + 50): {(caller + playback) * 50 / 1000:.2f} ms CPU")
    if media.media is not None:
        await media.media.finish("twilio_stop")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=10_000, help="frames per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions (slower)")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
