"""A call on a real edge node for edge and session tests: the node, Twilio's start message, and
the call with its bridge server on a loopback port."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from edge.bridge_server import start_bridge_server
from edge.call import LiveCall
from edge.media_socket import MediaLoop
from edge.node import EdgeNode
from edge.publisher import RecordingPublisher
from edge.telephony import RecordingTelephony
from infra.settings import Settings
from tests.support.twilio_socket import RecordingTwilioSocket

START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ1",
        "start": {
            "streamSid": "MZ1",
            "callSid": "CA1",
            "customParameters": {
                "call_id": "call-1",
                "tenant_id": "t1",
                "agent_id": "a1",
                "agent_version": "1",
            },
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
)
"""Twilio's start message for call ``call-1`` (stream ``MZ1``)."""


def edge_node(**edge: Any) -> EdgeNode:
    """A test node, its edge settings overridden by ``edge``, recording what it publishes."""
    settings = Settings(env="test")
    settings = settings.model_copy(update={"edge": settings.edge.model_copy(update=edge)})
    return EdgeNode(settings, publisher=RecordingPublisher(), telephony=RecordingTelephony())


@dataclass
class BridgedCall:
    """Call ``call-1`` started on a node, its bridge server listening on ``port``."""

    node: EdgeNode
    twilio: RecordingTwilioSocket
    loop: MediaLoop
    call: LiveCall
    token: str
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/bridge/call-1"


@contextlib.asynccontextmanager
async def bridged_call(node: EdgeNode) -> AsyncIterator[BridgedCall]:
    """Start call ``call-1`` on ``node`` and serve its bridge; finish the call and stop serving after."""
    twilio = RecordingTwilioSocket()
    loop = MediaLoop(twilio, node)
    loop.on_message(START)
    call = loop.call
    assert call is not None
    token = node.grant("call-1").token
    server = await start_bridge_server(node, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield BridgedCall(node, twilio, loop, call, token, port)
    finally:
        await loop.finish("twilio_stop")
        server.close()
