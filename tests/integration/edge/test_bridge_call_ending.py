"""A worker reaching the bridge while its call is finishing: refused, never attached to a dead call.

A real bridge server on a local port; no broker (the facts go to a recording publisher).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server
from websockets.exceptions import ConnectionClosed

import edge.call
from edge.bridge_server import start_bridge_server
from edge.media_socket import MediaLoop
from edge.node import EdgeNode
from edge.publisher import RecordingPublisher
from edge.recording import CallRecording
from edge.telephony import RecordingTelephony
from infra.process import free_port
from infra.settings import Settings
from schemas import bridge
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


@pytest.fixture
async def bridge_node(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[EdgeNode, int]]:
    monkeypatch.setattr(edge.call, "store_recording", _slow_store)
    node = EdgeNode(Settings(env="test"), publisher=RecordingPublisher(), telephony=RecordingTelephony())
    port = free_port()
    server: Server = await start_bridge_server(node, "127.0.0.1", port)
    yield node, port
    server.close()
    await server.wait_closed()


async def test_a_worker_connecting_while_the_call_finishes_is_told_it_ended(
    bridge_node: tuple[EdgeNode, int],
) -> None:
    node, port = bridge_node
    twilio = RecordingTwilioSocket()
    loop = MediaLoop(twilio, node)
    loop.on_message(START)
    started = node.publisher.records[0]  # type: ignore[attr-defined]  # carries the grant
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
