"""Edge capacity bench: N concurrent simulated calls against one edge process (not a test).

The edge (EdgeServer, real Kafka producer on the embedded broker) runs in this process; the
simulated Twilio clients and bridge workers run in a child process, so the edge's CPU time is
measured alone. Each call sends 50 μ-law frames/s and its worker keeps agent audio queued, so
the edge also paces 50 frames/s back out. Latency is Twilio-frame-sent -> bridge-frame-received,
both timed in the client process (so it includes the client's own scheduling delay).

    .venv/bin/python bench/bench_edge.py --calls 200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect

from edge.server import EdgeServer
from edge.telephony import RecordingTelephony
from edge.twiml import media_stream_url
from infra.kafka import make_consumer
from infra.process import free_port
from infra.settings import Settings
from infra.stack import running_stack
from infra.topics import ensure_topics
from schemas import bridge
from schemas.catalog import CALL_INPUTS
from schemas.codec import Codec

TOKEN = "bench-token"
FRAME = bytes([0xFF]) * 80 + bytes([0x7F]) * 80


async def _call(
    index: int, media_url: str, grants: dict[str, tuple[str, str]], stats: dict[str, Any], seconds: float
) -> None:
    call_id = f"bench-{uuid.uuid4()}"
    signature = RequestValidator(TOKEN).compute_signature(media_url, {})
    sent: dict[int, float] = {}
    async with connect(media_url, additional_headers={"X-Twilio-Signature": signature}) as twilio:
        start = {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": f"MZ{index}",
            "start": {
                "streamSid": f"MZ{index}",
                "callSid": f"CA{index}",
                "accountSid": "AC",
                "customParameters": {
                    "call_id": call_id,
                    "tenant_id": "t",
                    "agent_id": "a",
                    "agent_version": "1",
                },
            },
        }
        await twilio.send(json.dumps(start))
        while call_id not in grants:  # noqa: ASYNC110 - filled by the fact watcher task
            await asyncio.sleep(0.05)
        url, token = grants[call_id]
        async with connect(url, additional_headers={bridge.TOKEN_HEADER: token}, max_size=None) as worker:
            await worker.recv()  # hello
            tasks = [
                asyncio.create_task(_send_media(twilio, index, sent, seconds)),
                asyncio.create_task(_read_bridge(worker, sent, stats)),
                asyncio.create_task(_read_twilio(twilio, stats)),
                asyncio.create_task(_feed_agent(worker, seconds)),
            ]
            await tasks[0]
            await asyncio.sleep(0.5)
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await twilio.send(json.dumps({"event": "stop", "sequenceNumber": "0", "streamSid": f"MZ{index}"}))


async def _send_media(twilio: Any, index: int, sent: dict[int, float], seconds: float) -> None:
    payload = base64.b64encode(FRAME).decode()
    begin = time.monotonic()
    for n in range(int(seconds * 50)):
        await asyncio.sleep(max(0.0, begin + n * 0.02 - time.monotonic()))
        sent[n * 20] = time.monotonic()
        frame = {
            "event": "media",
            "sequenceNumber": str(n + 2),
            "streamSid": f"MZ{index}",
            "media": {"track": "inbound", "chunk": str(n + 1), "timestamp": str(n * 20), "payload": payload},
        }
        await twilio.send(json.dumps(frame))


async def _read_bridge(worker: Any, sent: dict[int, float], stats: dict[str, Any]) -> None:
    last = -1
    async for frame in worker:
        now = time.monotonic()
        message = bridge.decode(frame)
        if isinstance(message, bridge.CallerAudio):
            if message.seq != last + 1:
                stats["reordered_or_lost"] += 1
            last = message.seq
            stats["bridge_frames"] += 1
            at = sent.pop(message.stream_ms, None)
            if at is not None:
                stats["latency"].append(now - at)


async def _read_twilio(twilio: Any, stats: dict[str, Any]) -> None:
    async for _ in twilio:
        stats["playback_frames"] += 1


async def _feed_agent(worker: Any, seconds: float) -> None:
    chunk = (np.sin(np.arange(24000) * 2 * np.pi * 440 / 24000) * 3000).astype("<i2").tobytes()
    for seq in range(int(seconds) + 1):
        await worker.send(bridge.encode_agent_audio(seq, chunk))
        await asyncio.sleep(1.0)


async def _clients(calls: int, media_url: str, bootstrap: str, seconds: float) -> dict[str, Any]:
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
                    if type(fact).__name__ == "MediaStreamStarted":
                        grants[fact.call_id] = (fact.bridge_url, fact.bridge_token)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(1.0)
    stats: dict[str, Any] = {"latency": [], "bridge_frames": 0, "playback_frames": 0, "reordered_or_lost": 0}
    await asyncio.gather(*(_call(i, media_url, grants, stats, seconds) for i in range(calls)))
    watcher.cancel()
    await consumer.stop()
    return stats


def _client_process(calls: int, media_url: str, bootstrap: str, seconds: float, out: Any) -> None:
    os.sched_setaffinity(0, {1})
    out.put(asyncio.run(_clients(calls, media_url, bootstrap, seconds)))


async def _run_edge(settings: Settings, calls: int, seconds: float) -> None:
    os.sched_setaffinity(0, {0})
    server = EdgeServer(settings, telephony=RecordingTelephony())
    await server.start()
    queue: Any = multiprocessing.get_context("spawn").Queue()
    media_url = media_stream_url(settings.twilio.public_base_url)
    assert settings.kafka.bootstrap is not None
    child = multiprocessing.get_context("spawn").Process(
        target=_client_process, args=(calls, media_url, settings.kafka.bootstrap, seconds, queue)
    )
    child.start()
    while len(server.node.calls) < calls:  # noqa: ASYNC110 - counts sockets the server accepts
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # everyone connected and playing
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds - 4.0)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    stats = await asyncio.to_thread(queue.get)
    child.join()
    await server.drain(deadline_s=2)
    await server.stop()
    latency = np.array(stats["latency"]) * 1000
    expected = calls * int(seconds * 50)
    print(f"calls={calls} seconds={seconds}")
    share = cpu / wall
    print(f"edge CPU: {share * 100:.1f}% of one core; {share / calls * 1000:.2f} ms CPU per call-second")
    p50, p99 = np.percentile(latency, 50), np.percentile(latency, 99)
    print(f"frame-in -> bridge-out latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(f"bridge frames {stats['bridge_frames']} of {expected}; gaps/reorders {stats['reordered_or_lost']}")
    expected_out = calls * (seconds - 1) * 50
    print(f"playback frames received {stats['playback_frames']} (expected about {expected_out:.0f})")
    print(f"edge counters: {server.metrics.snapshot()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    base = Settings(env="test", data_dir=Path(tempfile.mkdtemp()), log_level="WARNING")
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
        asyncio.run(_run_edge(settings, args.calls, args.seconds))


if __name__ == "__main__":
    main()
