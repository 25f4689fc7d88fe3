"""The ``/twilio/media`` WebSocket: signature on the upgrade, then one receive loop per call.

``MediaLoop`` handles one frame at a time, synchronously. The edge server feeds it straight
from the socket (``edge.media_protocol``); the FastAPI route in ``edge.app`` drives the same
loop from raw ASGI messages (``AsgiMediaSocket``) when the app is hosted some other way.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from time import perf_counter
from typing import Any, Protocol

from edge import protocol
from edge.audio.vad import SpeechStarted
from edge.call import CallIdentity, LiveCall
from edge.node import EdgeNode, call_id_for, monotonic_ms
from edge.signature import SignatureChecker
from edge.twiml import StreamParameters
from schemas import bridge
from schemas.call_media import (
    CallerSpeechStarted,
    CallerSpeechStopped,
    DtmfReceived,
    MediaStreamStarted,
)

log = logging.getLogger(__name__)
_CLOSE_TRY_AGAIN_LATER = 1013
_CLOSE_POLICY_VIOLATION = 1008

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class AsgiMediaSocket:
    """The few WebSocket operations the media loop needs, over raw ASGI receive/send."""

    __slots__ = ("_closed", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed = False

    async def connect(self) -> bool:
        """Take the ``websocket.connect`` message; False if the client already left."""
        message = await self._receive()
        return bool(message["type"] == "websocket.connect")

    async def accept(self) -> None:
        await self._send({"type": "websocket.accept"})

    async def receive(self) -> str | bytes | None:
        """The next message's text or bytes; None once the socket is closed."""
        message = await self._receive()
        if message["type"] != "websocket.receive":
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes") or b""

    async def send_text(self, data: str) -> None:
        await self._send({"type": "websocket.send", "text": data})

    def try_send_text(self, data: str) -> bool:
        """ASGI sends are coroutines: never at once (the call then uses ``send_text``)."""
        return False

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close once (before ``accept`` this refuses the upgrade with HTTP 403)."""
        if self._closed:
            return
        self._closed = True
        await self._send({"type": "websocket.close", "code": code, "reason": reason or ""})


async def serve_media(
    socket: AsgiMediaSocket, signature: str | None, node: EdgeNode, checker: SignatureChecker
) -> None:
    """Run one Twilio media stream from upgrade to close."""
    if not await socket.connect():
        return
    if not checker.check_media_upgrade(signature):
        node.metrics.security_event("bad_signature", "/twilio/media upgrade")
        await socket.close(1008)  # before accept: the client gets HTTP 403
        return
    if not node.admit_stream():
        node.metrics.incr("streams.refused")
        await socket.close(_CLOSE_TRY_AGAIN_LATER)
        return
    try:
        await socket.accept()
    except BaseException:
        node.stream_settled()  # admitted, but no loop will ever settle it
        raise
    node.metrics.incr("streams.accepted")
    await MediaLoop(socket, node).run(socket)


class TwilioSocket(Protocol):
    """What the media loop needs of the Twilio WebSocket, whoever carries it."""

    async def send_text(self, data: str) -> None: ...

    def try_send_text(self, data: str) -> bool: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class MediaLoop:
    """Parses and dispatches Twilio frames for one socket; never raises on bad input.

    ``on_message`` handles one frame synchronously (the direct protocol calls it from
    ``data_received``); ``run`` drives it from an ASGI receive loop. ``finish`` ends the call.
    """

    def __init__(self, socket: TwilioSocket, node: EdgeNode) -> None:
        self.websocket = socket
        self.node = node
        self.call: LiveCall | None = None
        edge = node.settings.edge
        self._idle_s = edge.idle_timeout_s
        self._max_chars = edge.max_frame_chars
        self._loop = asyncio.get_running_loop()
        self.last_frame = self._loop.time()
        self.expired: str | None = None
        """Set when the watchdog closed the socket (the stop reason)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.finished = False
        self._unstarted = True  # admitted by ``node.admit_stream``; settled once
        node.watchdog.add(self)

    async def run(self, socket: AsgiMediaSocket) -> None:
        """The ASGI driver: receive until the socket closes or Twilio stops the stream."""
        reason = "socket_closed"
        receive = socket.receive
        try:
            while True:
                data = await receive()
                if data is None:
                    reason = self.expired or "socket_closed"
                    break
                stop = self.on_message(data)
                if stop is not None:
                    reason = stop
                    break
        except Exception:
            log.exception("media socket failed for call %s", self._call_id() or "-")
            reason = "error"
        finally:
            await self.finish(reason)

    async def finish(self, reason: str) -> None:
        """Called once when the stream is over, whatever the cause."""
        if self.finished:
            return
        self.finished = True
        self.node.watchdog.discard(self)
        for task in list(self._tasks):
            task.cancel()
        self._settle()
        call = self.call
        if call is None:
            return
        self.node.spend_token(call.call_id)  # a worker connecting from now on is told it ended
        try:
            await call.finish(reason)
        finally:
            # Whatever finish ran into, the call must not hold its slot and the drain for good.
            self.node.unregister(call.call_id)
            self.node.metrics.incr(f"streams.stopped.{call.stop_reason or reason}")

    def _settle(self) -> None:
        if self._unstarted:
            self._unstarted = False
            self.node.stream_settled()

    def check_deadlines(self, now: float) -> None:
        """Watchdog: close a socket that has been quiet for the idle timeout; spot stuck sends."""
        if self.expired is None and now - self.last_frame > self._idle_s:
            self.expired = "error"
            self.node.metrics.bad_input("idle_timeout", self._call_id(), f"no frame for {self._idle_s}s")
            self._spawn(self.websocket.close(1000))
        if self.call is not None:
            self.call.check_send(now)
            self.call.check_worker(now)
            self.call.check_agent(now)

    def on_message(self, data: str | bytes) -> str | None:
        """Handle one frame; returns the stop reason when Twilio ended the stream.

        Only a usable frame counts as a sign of life: a client sending nothing but refused
        frames is closed by the idle timeout like a silent one.
        """
        frame = protocol.parse(data, max_chars=self._max_chars)
        if type(frame) is protocol.Media:  # the 50-a-second case first
            if self._accepts(frame):
                call = self.call
                assert call is not None
                call.last_arrival = perf_counter()
                if self._on_media(frame):
                    self._spawn(self._barge_in(call))
            return None
        if isinstance(frame, protocol.Stop):
            return "twilio_stop" if self._accepts(frame) else None
        self._dispatch(frame)
        return None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call_id(self) -> str:
        return self.call.call_id if self.call is not None else ""

    def _accepts(self, frame: protocol.Media | protocol.Mark | protocol.Dtmf | protocol.Stop) -> bool:
        """A frame for the current stream, in order; otherwise counted and ignored."""
        call = self.call
        if call is None:
            self.node.metrics.bad_input(f"{type(frame).__name__.lower()}_before_start", "", "no start yet")
            return False
        if frame.stream_sid != call.stream_sid:
            self.node.metrics.bad_input("wrong_stream_sid", call.call_id, frame.stream_sid[:64])
            return False
        refused = call.session.sequence.observe(frame.sequence_number)
        if refused is not None:
            self.node.metrics.bad_input(refused, call.call_id, f"sequenceNumber {frame.sequence_number}")
            return False
        self.last_frame = self._loop.time()
        return True

    def refuse_undecodable(self, detail: str) -> None:
        """A text frame that is not UTF-8 (the sans-I/O protocol does not check): count it, drop it."""
        self.node.metrics.bad_input("bad_utf8", self._call_id(), detail)

    def _dispatch(self, frame: protocol.ParseResult) -> None:
        match frame:
            case protocol.Media():
                if self._accepts(frame) and self._on_media(frame):
                    assert self.call is not None
                    self._spawn(self._barge_in(self.call))
            case protocol.Mark():
                if self._accepts(frame):
                    self._on_mark(frame)
            case protocol.Dtmf():
                if self._accepts(frame):
                    self._on_dtmf(frame)
            case protocol.Start():
                self._on_start(frame)
            case protocol.Connected():
                self.last_frame = self._loop.time()
            case protocol.FrameError(kind=kind, detail=detail):
                self.node.metrics.bad_input(kind, self._call_id(), detail)
            case protocol.Stop():
                pass  # handled by the loop

    def _on_media(self, frame: protocol.Media) -> bool:
        """Feed one media frame to the session; True when it calls for a barge-in."""
        call = self.call
        assert call is not None
        if frame.track not in ("inbound", "inbound_track"):
            self.node.metrics.incr("media.other_track")
            return False
        recording = call.recording
        sink: list[bytes] | None = [] if recording is not None else None
        result = call.session.on_media(frame, now_ms=monotonic_ms(), pcm8k_sink=sink)
        if result.bridge_frames:
            call.caller_audio_ready()
        if (
            recording is not None
            and sink
            and not recording.add_caller(frame.timestamp_ms, b"".join(sink), now_ms=call.stream_ms())
        ):
            self.node.metrics.bad_input("bad_timestamp", call.call_id, f"timestamp {frame.timestamp_ms}")
        for event in result.speech:
            if isinstance(event, SpeechStarted):
                call.publish(CallerSpeechStarted(**call.envelope(), stream_ms=event.stream_ms))
            else:
                call.publish(
                    CallerSpeechStopped(
                        **call.envelope(), stream_ms=event.stream_ms, duration_ms=event.duration_ms
                    )
                )
        return result.barge_in

    async def _barge_in(self, call: LiveCall) -> None:
        cleared = await call.clear_playback("edge_vad")
        self.node.metrics.incr("barge_in.edge_vad")
        call.notify_worker(
            bridge.BargeIn(
                utterance_id=cleared.utterance_id,
                played_ms=cleared.played_ms,
                stream_ms=call.session.last_stream_ms,
            )
        )

    def _on_mark(self, frame: protocol.Mark) -> None:
        call = self.call
        assert call is not None
        call.mark_reached(frame.name)

    def _on_dtmf(self, frame: protocol.Dtmf) -> None:
        call = self.call
        assert call is not None
        stream_ms = call.session.last_stream_ms
        call.publish(DtmfReceived(**call.envelope(), digit=frame.digit[:1], stream_ms=stream_ms))
        call.notify_worker(bridge.Dtmf(digit=frame.digit[:1], stream_ms=stream_ms))

    def _on_start(self, frame: protocol.Start) -> None:
        if self.call is not None:
            self.node.metrics.bad_input("second_start", self.call.call_id, frame.stream_sid[:64])
            return
        if not protocol.supported_format(frame):
            detail = f"{frame.encoding[:40]} {frame.sample_rate} Hz x{frame.channels}"
            self._refuse_start("bad_media_format", "", detail)
            return
        params = _stream_parameters(frame, self.node)
        if params is None:
            self._refuse_start("start_without_call", "", f"callSid {frame.call_sid[:64]}")
            return
        if not CALL_ID.fullmatch(params.call_id):
            # Ours are UUIDs and the dialer's ids: anything else was not written by us, and a
            # call id names files (the recording) and log lines.
            self._refuse_start("bad_call_id", "", repr(params.call_id[:64]))
            return
        if params.call_id in self.node.calls:
            self._refuse_start("duplicate_stream", params.call_id, frame.stream_sid[:64])
            return
        identity = CallIdentity(params=params, stream_sid=frame.stream_sid, call_sid=frame.call_sid)
        call = LiveCall(self.node, self.websocket, identity, started_ms=monotonic_ms())
        self.call = call  # from here on ``finish`` cleans up after it, whatever fails next
        # The ids derive from the client's strings: anything that can fail does so before the
        # call takes its slot.
        envelope = call.envelope()
        call.session.sequence.observe(frame.sequence_number)
        self.node.register(call.call_id, call)
        self._settle()
        self.last_frame = self._loop.time()
        grant = self.node.grant(call.call_id)
        call.publish(
            MediaStreamStarted(
                **envelope,
                stream_sid=frame.stream_sid,
                twilio_call_sid=frame.call_sid,
                edge_id=self.node.edge_id,
                bridge_url=self.node.bridge_url(call.call_id),
                bridge_token=grant.token,
                token_expires_at=grant.expires_at,
                media_format=frame.encoding,
                sample_rate=frame.sample_rate,
                channels=frame.channels,
            )
        )
        log.info("media stream %s started for call %s", frame.stream_sid, call.call_id)

    def _refuse_start(self, kind: str, call_id: str, detail: str) -> None:
        """A ``start`` we cannot take: nothing else will come on this socket that we could use."""
        self.node.metrics.bad_input(kind, call_id, detail)
        self._spawn(self.websocket.close(_CLOSE_POLICY_VIOLATION))


CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""A call id as the platform makes them (UUIDs, the dialer's and campaigns' ids)."""


def _stream_parameters(frame: protocol.Start, node: EdgeNode) -> StreamParameters | None:
    """The call's identity from our ``<Parameter>``s; a bare stream falls back to routing defaults."""
    custom = frame.custom_parameters
    try:
        version = int(custom.get("agent_version", "0"))
    except ValueError:
        version = 0
    call_id = custom.get("call_id") or (call_id_for(frame.call_sid) if frame.call_sid else "")
    agent_id = custom.get("agent_id", "")
    fallback = node.routing.fallback
    if not call_id or (not agent_id and fallback is None):
        return None
    return StreamParameters(
        call_id=call_id,
        tenant_id=custom.get("tenant_id") or (fallback.tenant_id if fallback else "unknown"),
        agent_id=agent_id or (fallback.agent_id if fallback else ""),
        agent_version=version or (fallback.agent_version if fallback else 0),
        direction=custom.get("direction", "inbound"),
        record=custom.get("record", "false").lower() == "true",
    )
