"""The media loop with fakes: what a hostile or odd Twilio client can do to the node's calls."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from edge.audio import mulaw
from edge.audio.speech import synthesize, to_rate
from edge.bridge_server import apply_directive, serve_worker
from edge.call import LiveCall
from edge.media_protocol import MediaStreamProtocol
from edge.media_socket import MediaLoop
from edge.node import EdgeNode
from edge.publisher import RecordingPublisher
from edge.signature import SignatureChecker
from edge.telephony import RecordingTelephony
from edge.twiml import UNAVAILABLE_MESSAGE
from infra.settings import Settings
from schemas import bridge
from schemas.call_media import CallerSpeechStopped, MediaStreamStopped, PlaybackMarkReached
from schemas.codec import Codec
from schemas.registry import Record
from tests.support.twilio_socket import RecordingTwilioSocket


def _node(**edge: Any) -> EdgeNode:
    settings = Settings(env="test")
    settings = settings.model_copy(update={"edge": settings.edge.model_copy(update=edge)})
    return EdgeNode(settings, publisher=RecordingPublisher(), telephony=RecordingTelephony())


def _start(
    call_id: str = "call-1",
    sid: str = "MZ1",
    record: bool = False,
    call_sid: str = "CA1",
    **media_format: Any,
) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": sid,
            "start": {
                "streamSid": sid,
                "callSid": call_sid,
                "customParameters": {
                    "call_id": call_id,
                    "tenant_id": "t1",
                    "agent_id": "a1",
                    "agent_version": "1",
                    "record": str(record).lower(),
                },
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
                | media_format,
            },
        }
    )


def _media(seq: int, timestamp: int, payload: bytes = b"\xff" * 160, sid: str = "MZ1") -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "streamSid": sid,
            "media": {
                "track": "inbound",
                "timestamp": str(timestamp),
                "payload": base64.b64encode(payload).decode(),
            },
        }
    )


def _stop(seq: int) -> str:
    return json.dumps(
        {"event": "stop", "sequenceNumber": str(seq), "streamSid": "MZ1", "stop": {"callSid": "CA1"}}
    )


def _published(node: EdgeNode) -> list[Record]:
    publisher = node.publisher
    assert isinstance(publisher, RecordingPublisher)
    return publisher.records


async def test_a_call_whose_finish_fails_still_frees_its_slot() -> None:
    node = _node()
    loop = MediaLoop(RecordingTwilioSocket(), node)
    loop.on_message(_start())
    assert list(node.calls) == ["call-1"]

    def refuse(record: Record) -> bool:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    node.publisher.publish = refuse  # type: ignore[method-assign]
    with pytest.raises(UnicodeEncodeError):
        await loop.finish("socket_closed")
    assert node.calls == {}
    assert node.drained.is_set()


async def test_a_bogus_sequence_number_neither_silences_the_call_nor_loses_its_stop() -> None:
    node = _node()
    loop = MediaLoop(RecordingTwilioSocket(), node)
    loop.on_message(_start())
    loop.on_message(_media(2, 0))
    loop.on_message(_media(10**20, 20))
    for seq in range(3, 13):
        loop.on_message(_media(seq, (seq - 2) * 20))
    assert loop.call is not None
    assert loop.call.session.frames_received == 11
    assert node.metrics.get("bad_input.sequence_jump") == 1
    assert loop.on_message(_stop(13)) == "twilio_stop"
    await loop.finish("twilio_stop")
    stopped = [r for r in _published(node) if isinstance(r, MediaStreamStopped)]
    assert len(stopped) == 1
    Codec.single_object().encode(stopped[0])  # encodable: the stream's end is not lost


@pytest.mark.parametrize(
    ("start", "kind"),
    [
        (_start(sid="MZ2"), "duplicate_stream"),
        (_start(call_id="", sid="MZ2", call_sid=""), "start_without_call"),
        (_start(call_id="call-2", sid="MZ2", encoding="audio/L16"), "bad_media_format"),
        (_start(call_id="call-2", sid="MZ2", sampleRate=2**40), "bad_media_format"),
        (_start(call_id="../../etc/x", sid="MZ2", record=True), "bad_call_id"),
        (_start(call_id="call 2", sid="MZ2"), "bad_call_id"),
    ],
)
async def test_a_refused_start_closes_its_socket(start: str, kind: str) -> None:
    node = _node()
    first = MediaLoop(RecordingTwilioSocket(), node)
    first.on_message(_start())
    twilio = RecordingTwilioSocket()
    refused = MediaLoop(twilio, node)
    refused.on_message(start)
    await asyncio.sleep(0)
    assert node.metrics.get(f"bad_input.{kind}") == 1
    assert twilio.closed == 1008
    assert list(node.calls) == ["call-1"]
    await first.finish("x")
    await refused.finish("socket_closed")
    assert not any(getattr(r, "sample_rate", 8000) != 8000 for r in _published(node))


async def test_only_usable_frames_keep_a_socket_from_its_idle_timeout() -> None:
    node = _node()
    loop = MediaLoop(RecordingTwilioSocket(), node)
    loop.last_frame = 0.0
    for seq in range(2, 12):  # media on a socket with no call: each one refused
        loop.on_message(_media(seq, seq * 20))
    loop.on_message("not json")
    assert loop.last_frame == 0.0
    loop.check_deadlines(node.settings.edge.idle_timeout_s + 1.0)
    assert node.metrics.get("bad_input.idle_timeout") == 1
    await loop.finish("error")


async def test_a_caller_still_speaking_at_hang_up_gets_speech_stopped() -> None:
    node = _node()
    loop = MediaLoop(RecordingTwilioSocket(), node)
    loop.on_message(_start())
    samples, rate = synthesize("Hello there, I would like to book a table for four people tonight")
    speech = mulaw.encode(to_rate(samples, rate, 8000))
    for seq, index in enumerate(range(0, len(speech) // 2 // 160 * 160, 160), start=2):
        loop.on_message(_media(seq, index // 8, speech[index : index + 160]))
    assert loop.call is not None
    assert loop.call.session.speaking
    await loop.finish("socket_closed")
    kinds = [type(r).__name__ for r in _published(node)]
    assert kinds[-2:] == ["CallerSpeechStopped", "MediaStreamStopped"]
    assert kinds.count("CallerSpeechStarted") == kinds.count("CallerSpeechStopped")
    assert isinstance(_published(node)[-2], CallerSpeechStopped)


async def test_an_absurd_timestamp_does_not_grow_the_recording() -> None:
    node = _node()
    loop = MediaLoop(RecordingTwilioSocket(), node)
    loop.on_message(_start(record=True))
    loop.on_message(_media(2, 0))
    loop.on_message(_media(3, 20_000_000))  # 5.5 hours into a call a moment old
    call = loop.call
    assert call is not None
    assert call.recording is not None
    assert call.recording.duration_ms == 40
    assert node.metrics.get("bad_input.bad_timestamp") == 1
    call.recording = None  # nothing to store
    await loop.finish("x")


async def test_notices_dropped_while_no_worker_is_attached_are_counted() -> None:
    node = _node()
    loop = MediaLoop(RecordingTwilioSocket(), node)
    loop.on_message(_start())
    call = loop.call
    assert call is not None
    for index in range(300):
        call.notify_worker(bridge.Dtmf(digit=str(index % 10), stream_ms=index))
    assert node.metrics.get("bridge.notices_dropped") == 300 - len(call.notices)
    await loop.finish("x")


async def test_upgrades_beyond_the_limit_wait_for_none_to_start() -> None:
    node = _node(max_streams=1)
    assert node.admit_call()
    assert node.admit_stream()  # the answered call's socket
    assert not node.admit_stream()  # no second one on the same reservation
    loops = [MediaLoop(RecordingTwilioSocket(), node)]
    loops[0].on_message(_start())
    assert not node.admit_stream()  # the call is live: the node is full
    await loops[0].finish("x")
    assert node.admit_stream()  # its slot is free again
    assert not node.admit_stream()
    late = MediaLoop(RecordingTwilioSocket(), node)
    await late.finish("socket_closed")  # left before its start: the slot is free once more
    assert node.admit_stream()


# --- the direct protocol -----------------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _client_frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    assert len(payload) < 126
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + key + masked


async def test_a_text_frame_that_is_not_utf8_is_its_own_bad_input() -> None:
    node = _node()
    checker = SignatureChecker("tok", "https://edge.example.com")
    config = SimpleNamespace(ws_max_size=1 << 20, ws_ping_interval=None)
    media = MediaStreamProtocol.bound(node, checker)(config, SimpleNamespace(connections=set()), {})
    transport = FakeTransport()
    media.connection_made(transport)  # type: ignore[arg-type]
    signature = RequestValidator("tok").compute_signature("wss://edge.example.com/twilio/media", {})
    key = base64.b64encode(os.urandom(16)).decode()
    media.data_received(
        (
            "GET /twilio/media HTTP/1.1\r\nHost: edge.example.com\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"X-Twilio-Signature: {signature}\r\n\r\n"
        ).encode()
    )
    assert transport.out.startswith(b"HTTP/1.1 101")
    media.data_received(_client_frame(0x1, b'{"event":"media"\xff}'))
    assert node.metrics.get("bad_input.bad_utf8") == 1
    assert node.metrics.get("bad_input.binary") == 0
    assert not transport.closed
    media.connection_lost(None)
    await asyncio.sleep(0)


class RacingWorker:
    """A worker connection whose hello is sent just as the call begins to finish."""

    def __init__(self, on_hello: Any, path: str, token: str) -> None:
        self.request = SimpleNamespace(path=path, headers={bridge.TOKEN_HEADER: token})
        self._on_hello = on_hello
        self.closed: int | None = None

    async def send(self, data: str) -> None:
        self._on_hello()
        await asyncio.sleep(0)  # the hello is on its way; the call's finish begins meanwhile

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = code

    def __aiter__(self) -> RacingWorker:
        return self

    async def __anext__(self) -> str:
        raise StopAsyncIteration


async def test_a_worker_whose_hello_races_the_call_end_is_refused_not_attached() -> None:
    node = _node()
    loop = MediaLoop(RecordingTwilioSocket(), node)
    loop.on_message(_start())
    call = loop.call
    assert call is not None
    token = node._grants["call-1"].token
    finishing: list[asyncio.Task[None]] = []
    worker = RacingWorker(
        lambda: finishing.append(asyncio.create_task(loop.finish("twilio_stop"))),
        bridge.PATH_PREFIX + "call-1",
        token,
    )
    racing = asyncio.create_task(serve_worker(worker, node))  # type: ignore[arg-type]
    await racing
    await finishing[0]
    assert worker.closed == bridge.CLOSE_CALL_ENDED
    assert call.worker is None


def _call_without_worker(
    agent_wait_s: float,
) -> tuple[EdgeNode, RecordingTwilioSocket, MediaLoop, LiveCall]:
    """A started call no worker has connected to, and the loop time it has waited since."""
    node = _node(agent_wait_s=agent_wait_s)
    twilio = RecordingTwilioSocket()
    loop = MediaLoop(twilio, node)
    loop.on_message(_start())
    assert loop.call is not None
    assert loop.call.without_agent_since is not None
    return node, twilio, loop, loop.call


async def _finish_after_watchdog(loop: MediaLoop) -> None:
    """Let the watchdog's task run, then finish the stream as its closed socket would."""
    for _ in range(3):
        await asyncio.sleep(0)
    await loop.finish("socket_closed")


def _stop_reasons(node: EdgeNode) -> list[str]:
    return [r.reason for r in _published(node) if isinstance(r, MediaStreamStopped)]


async def test_a_call_no_worker_comes_for_is_ended_with_an_apology_not_left_in_silence() -> None:
    node, twilio, loop, call = _call_without_worker(20.0)
    waiting_since = call.without_agent_since
    assert waiting_since is not None
    loop.check_deadlines(waiting_since + 19.9)
    assert twilio.closed is None
    loop.check_deadlines(waiting_since + 20.1)
    await _finish_after_watchdog(loop)
    assert isinstance(node.telephony, RecordingTelephony)
    assert node.telephony.said == [("CA1", UNAVAILABLE_MESSAGE)]
    assert twilio.closed == 1000
    assert node.metrics.get("streams.no_agent") == 1
    assert _stop_reasons(node) == ["no_agent"]


async def test_the_wait_for_a_worker_starts_again_when_the_worker_leaves() -> None:
    node, twilio, loop, call = _call_without_worker(20.0)
    worker: Any = object()
    call.attach_worker(worker)
    assert call.without_agent_since is None
    loop.check_deadlines(asyncio.get_running_loop().time() + 25.0)  # served all along
    assert twilio.closed is None
    call.detach_worker(worker)
    left_at = call.without_agent_since
    assert left_at is not None
    loop.check_deadlines(left_at + 20.1)
    await _finish_after_watchdog(loop)
    assert twilio.closed == 1000
    assert _stop_reasons(node) == ["no_agent"]


async def test_an_agent_wait_of_zero_waits_for_ever() -> None:
    node, twilio, loop, call = _call_without_worker(0.0)
    later = (call.without_agent_since or 0.0) + 10_000.0
    loop.last_frame = later  # frames keep coming
    loop.check_deadlines(later)
    await asyncio.sleep(0)
    assert twilio.closed is None
    assert node.metrics.get("streams.no_agent") == 0
    await loop.finish("twilio_stop")


class TwilioStopsFirst(RecordingTelephony):
    """Twilio ends the stream (its ``stop``) before its REST answer reaches the edge."""

    def __init__(self, loop: MediaLoop, *, transfer_ok: bool) -> None:
        super().__init__()
        self._loop = loop
        self._transfer_ok = transfer_ok
        self.finishing: list[asyncio.Task[None]] = []

    def _stream_stops(self) -> None:
        reason = self._loop.on_message(_stop(2))
        assert reason == "twilio_stop"
        self.finishing.append(asyncio.get_running_loop().create_task(self._loop.finish(reason)))

    async def hang_up(self, call_sid: str) -> None:
        await super().hang_up(call_sid)
        self._stream_stops()
        await asyncio.sleep(0.01)  # the REST response is still on its way

    async def transfer(self, call_sid: str, target: str) -> bool:
        await super().transfer(call_sid, target)
        if self._transfer_ok:
            self._stream_stops()
        await asyncio.sleep(0.01)
        return self._transfer_ok


@pytest.mark.parametrize(
    ("directive", "transfer_ok", "reason"),
    [
        (bridge.HangUp(reason="goodbye"), True, "hangup"),
        (bridge.Transfer(target="+15550001111"), True, "transferred"),
        (bridge.Transfer(target="+15550001111"), False, "transfer_failed"),
    ],
)
async def test_a_line_directive_names_the_stop_even_when_twilios_stop_comes_first(
    directive: bridge.BridgeMessage, transfer_ok: bool, reason: str
) -> None:
    node = _node()
    loop = MediaLoop(RecordingTwilioSocket(), node)
    telephony = TwilioStopsFirst(loop, transfer_ok=transfer_ok)
    node.telephony = telephony
    loop.on_message(_start())
    assert loop.call is not None
    await apply_directive(loop.call, directive)
    await asyncio.gather(*telephony.finishing)
    # twilio_stop would read as the caller hanging up: a failed transfer as a transfer.
    assert _stop_reasons(node) == [reason]


async def test_a_clear_returns_the_marks_still_queued_as_reached() -> None:
    # Twilio returns its pending marks on a clear; the worker waiting for its hang-up mark after
    # a goodbye the caller talked over must hear of it too, not wait out its timeout.
    node = _node()
    loop = MediaLoop(RecordingTwilioSocket(), node)
    loop.on_message(_start())
    call = loop.call
    assert call is not None
    await apply_directive(call, bridge.BeginUtterance(utterance_id="goodbye"))
    await apply_directive(call, bridge.AgentAudio(seq=0, pcm=b"\x10\x00" * 24000))  # 1 s
    await apply_directive(call, bridge.PlayMark(name="goodbye"))
    await apply_directive(call, bridge.PlayMark(name="hangup"))
    await apply_directive(call, bridge.ClearPlayback())
    reached = [r.mark_name for r in _published(node) if isinstance(r, PlaybackMarkReached)]
    assert reached == ["goodbye", "hangup"]
    told = [bridge.decode(n) for n in call.notices]
    assert [m.name for m in told if isinstance(m, bridge.MarkReached)] == ["goodbye", "hangup"]
    await loop.finish("twilio_stop")
