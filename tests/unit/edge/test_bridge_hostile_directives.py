"""The audio bridge's decoder and the edge's bridge server against hostile worker directives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect

from edge.bridge_server import start_bridge_server
from edge.call import CallIdentity, LiveCall
from edge.node import EdgeNode, monotonic_ms
from edge.publisher import RecordingPublisher
from edge.telephony import RecordingTelephony
from edge.twiml import StreamParameters
from infra.process import free_port
from infra.settings import Settings
from schemas import bridge
from tests.support.twilio_socket import RecordingTwilioSocket


def test_decode_never_raises_on_deeply_nested_json() -> None:
    # 2,000 chars: well under MAX_TEXT_CHARS (4,096), yet json.loads raises RecursionError,
    # which is no ValueError.
    small = "[" * 2000
    assert len(small) < bridge.MAX_TEXT_CHARS
    result = bridge.decode(small)
    assert isinstance(result, bridge.BridgeError)


def test_decode_never_raises_on_nested_field_value() -> None:
    frame = '{"type":"mark","name":' + "[" * 1500 + "]" * 1500 + "}"
    assert len(frame) < bridge.MAX_TEXT_CHARS
    assert isinstance(bridge.decode(frame), bridge.BridgeError)


@contextlib.asynccontextmanager
async def _worker_of_a_live_call(
    telephony: RecordingTelephony | None = None,
) -> AsyncIterator[tuple[LiveCall, ClientConnection]]:
    """A live call on an edge node with its bridge server, and a worker connected (hello read)."""
    node = EdgeNode(
        Settings(env="test"), publisher=RecordingPublisher(), telephony=telephony or RecordingTelephony()
    )
    params = StreamParameters(
        call_id="call-1", tenant_id="t1", agent_id="a1", agent_version=1, direction="inbound"
    )
    call = LiveCall(
        node,
        RecordingTwilioSocket(),
        CallIdentity(params=params, stream_sid="MZ1", call_sid="CA1"),
        monotonic_ms(),
    )
    node.register("call-1", call)
    grant = node.grant("call-1")
    port = free_port()
    server = await start_bridge_server(node, "127.0.0.1", port)
    try:
        async with connect(
            f"ws://127.0.0.1:{port}/bridge/call-1", additional_headers={bridge.TOKEN_HEADER: grant.token}
        ) as ws:
            assert isinstance(bridge.decode(await ws.recv()), bridge.Hello)
            yield call, ws
    finally:
        for task in call._tasks:
            task.cancel()
        server.close()
        await server.wait_closed()


async def _stopped(call: LiveCall) -> None:
    for _ in range(50):
        if call.stop_reason is not None:
            return
        await asyncio.sleep(0.02)


async def test_a_nested_json_directive_does_not_close_the_bridge() -> None:
    """docs/audio-bridge.md: 'Bad frames are counted and ignored; they never close the bridge.'"""
    async with _worker_of_a_live_call() as (call, ws):
        await ws.send("[" * 2000)  # a bad frame
        await ws.send(bridge.encode(bridge.BeginUtterance(utterance_id="u-after")))  # a good one after it
        for _ in range(100):  # the good one is carried out: an open but deaf bridge passed before
            if call.session.playback.utterance_id == "u-after":
                break
            await asyncio.sleep(0.01)
        assert call.session.playback.utterance_id == "u-after"
        assert call.node.metrics.get("bad_input.bridge.not_json") == 1  # counted
        assert ws.close_code is None, f"bridge closed with {ws.close_code} {ws.close_reason!r}"
        assert call.worker is not None


def test_decode_refuses_strings_that_are_not_utf8() -> None:
    # A lone surrogate is valid JSON text but no Unicode string: accepted here, it makes the
    # edge's AgentInterrupted unencodable later (facts.unencodable: the interruption is lost).
    result = bridge.decode('{"type":"utterance","utterance_id":"\\ud800"}')
    assert isinstance(result, bridge.BridgeError), result


async def test_a_transfer_directive_redirects_the_call_and_ends_its_stream() -> None:
    telephony = RecordingTelephony()
    async with _worker_of_a_live_call(telephony) as (call, ws):
        await ws.send(bridge.encode(bridge.Transfer(target="+14155550123")))
        await _stopped(call)
    assert telephony.transferred == [("CA1", "+14155550123")]
    assert call.stop_reason == "transferred"


class _RefusingTelephony(RecordingTelephony):
    async def transfer(self, call_sid: str, target: str) -> bool:
        await super().transfer(call_sid, target)
        return False


async def test_a_transfer_the_carrier_refuses_hangs_up_and_says_why() -> None:
    # The agent had said goodbye and the call machine waited for a transfer that never came.
    telephony = _RefusingTelephony()
    async with _worker_of_a_live_call(telephony) as (call, ws):
        await ws.send(bridge.encode(bridge.Transfer(target="+14155550123")))
        await _stopped(call)
    assert telephony.hung_up == ["CA1"]
    assert call.stop_reason == "transfer_failed"
