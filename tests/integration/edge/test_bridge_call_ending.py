"""A worker reaching the bridge while its call is finishing: refused, never attached to a dead call.

A real bridge server on a local port; the facts go to the real broker (a topic of the test's own)
by the edge's own publisher, and the worker's grant is read back from there.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server
from websockets.exceptions import ConnectionClosed

import edge.call
from edge.bridge_server import start_bridge_server
from edge.media_socket import MediaLoop
from edge.metrics import EdgeMetrics
from edge.node import EdgeNode
from edge.publisher import KafkaFactPublisher
from edge.recording import CallRecording
from edge.telephony import RecordingTelephony
from infra.kafka import make_consumer, stop_consumer
from infra.process import free_port
from infra.settings import KafkaSettings, Settings
from schemas import bridge
from schemas.call_media import MediaStreamStarted
from schemas.codec import Codec
from tests.integration.helpers import drain, fresh_topic
from tests.support.twilio_socket import RecordingTwilioSocket


def _slow_store(recording: CallRecording, target: str, name: str) -> tuple[str, int]:
    time.sleep(1.0)  # an upload of a long call to an object store
    return f"memory://recordings/{name}", recording.duration_ms


START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "streamSid": "MZ1",
            "callSid": "CA1",
            "customParameters": {"call_id": "call-1", "tenant_id": "t1", "agent_id": "a1", "record": "true"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
)


@dataclass
class _Bridge:
    node: EdgeNode
    port: int
    kafka: KafkaSettings
    topic: str
    """Where the node's facts go."""
    codec: Codec


@pytest.fixture
async def bridge_node(
    settings: Settings, producer: AIOKafkaProducer, codec: Codec, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[_Bridge]:
    monkeypatch.setattr(edge.call, "store_recording", _slow_store)
    topic = await fresh_topic(settings.kafka, "edge-bridge-ending")
    metrics = EdgeMetrics()
    publisher = KafkaFactPublisher(producer, codec, metrics, topic=topic)
    publisher.start()
    node = EdgeNode(
        Settings(env="test"), publisher=publisher, telephony=RecordingTelephony(), metrics=metrics
    )
    port = free_port()
    server: Server = await start_bridge_server(node, "127.0.0.1", port)
    try:
        yield _Bridge(node, port, settings.kafka, topic, codec)
    finally:
        server.close()
        await server.wait_closed()
        await publisher.close()


async def _first_fact(bridge: _Bridge) -> MediaStreamStarted:
    """The node's first fact as the broker holds it: the stream's start, which carries the grant."""
    consumer = make_consumer(bridge.kafka, bridge.topic, group_id=None)
    await consumer.start()
    try:
        first = (await drain(consumer, lambda seen: len(seen) >= 1))[0]
    finally:
        await stop_consumer(consumer)
    return bridge.codec.decode_as(first.value, MediaStreamStarted)


async def test_a_worker_connecting_while_the_call_finishes_is_told_it_ended(
    bridge_node: _Bridge,
) -> None:
    node, port = bridge_node.node, bridge_node.port
    twilio = RecordingTwilioSocket()
    loop = MediaLoop(twilio, node)
    loop.on_message(START)
    started = await _first_fact(bridge_node)  # carries the grant
    assert started.call_id == "call-1"
    url = f"ws://127.0.0.1:{port}{bridge.PATH_PREFIX}call-1"
    headers = {bridge.TOKEN_HEADER: started.bridge_token}
    finishing = asyncio.create_task(loop.finish("twilio_stop"))
    await asyncio.sleep(0.2)  # the recording is being stored: the call is not gone yet
    assert "call-1" in node.calls
    async with connect(url, additional_headers=headers) as late:
        with pytest.raises(ConnectionClosed):
            await late.recv()  # no hello: the call is ending
        assert late.close_code == bridge.CLOSE_CALL_ENDED
    await finishing
    assert node.calls == {}
    assert node.check_token("call-1", started.bridge_token) == bridge.CLOSE_CALL_ENDED
