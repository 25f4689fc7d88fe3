"""The ``/twilio/media`` WebSocket: signature on the upgrade, then one receive loop per call."""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket

from edge import protocol
from edge.audio.vad import SpeechStarted
from edge.call import CallIdentity, LiveCall
from edge.node import EdgeNode, call_id_for, monotonic_ms
from edge.twiml import StreamParameters
from schemas import bridge
from schemas.call_media import (
    CallerSpeechStarted,
    CallerSpeechStopped,
    DtmfReceived,
    MediaStreamStarted,
    PlaybackMarkReached,
)

log = logging.getLogger(__name__)
_CLOSE_TRY_AGAIN_LATER = 1013


async def serve_media(websocket: WebSocket, node: EdgeNode) -> None:
    """Run one Twilio media stream from upgrade to close."""
    from edge.signature import SIGNATURE_HEADER, SignatureChecker

    checker: SignatureChecker = websocket.app.state.signatures
    if not checker.check_media_upgrade(websocket.headers.get(SIGNATURE_HEADER)):
        node.metrics.security_event("bad_signature", "/twilio/media upgrade")
        await websocket.close(1008)  # before accept: the client gets HTTP 403
        return
    if not node.has_capacity():
        node.metrics.incr("streams.refused")
        await websocket.close(_CLOSE_TRY_AGAIN_LATER)
        return
    await websocket.accept()
    node.metrics.incr("streams.accepted")
    await MediaLoop(websocket, node).run()


class MediaLoop:
    """Receives, parses and dispatches Twilio frames for one socket; never raises on bad input."""

    def __init__(self, websocket: WebSocket, node: EdgeNode) -> None:
        self.websocket = websocket
        self.node = node
        self.call: LiveCall | None = None
        edge = node.settings.edge
        self._idle_s = edge.idle_timeout_s
        self._max_chars = edge.max_frame_chars

    async def run(self) -> None:
        reason = "socket_closed"
        try:
            reason = await self._receive_loop()
        except Exception:
            log.exception("media socket failed for call %s", self.call.call_id if self.call else "-")
            reason = "error"
        finally:
            call = self.call
            if call is not None:
                await call.finish(reason)
                self.node.unregister(call.call_id)
                self.node.metrics.incr(f"streams.stopped.{call.stop_reason or reason}")

    async def _receive_loop(self) -> str:
        receive = self.websocket.receive
        while True:
            try:
                async with asyncio.timeout(self._idle_s):  # no extra task per frame, unlike wait_for
                    message = await receive()
            except TimeoutError:
                self.node.metrics.bad_input("idle_timeout", self._call_id(), f"no frame for {self._idle_s}s")
                await self.websocket.close(1000)
                return "error"
            if message["type"] == "websocket.disconnect":
                return "socket_closed"
            text = message.get("text")
            frame = protocol.parse(
                text if text is not None else message.get("bytes") or b"", max_chars=self._max_chars
            )
            if isinstance(frame, protocol.Stop):
                if self._accepts(frame):
                    return "twilio_stop"
                continue
            await self._dispatch(frame)

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
        if not call.session.sequence.observe(frame.sequence_number):
            self.node.metrics.bad_input("late_frame", call.call_id, f"sequenceNumber {frame.sequence_number}")
            return False
        return True

    async def _dispatch(self, frame: protocol.ParseResult) -> None:
        match frame:
            case protocol.Media():
                if self._accepts(frame):
                    await self._on_media(frame)
            case protocol.Mark():
                if self._accepts(frame):
                    self._on_mark(frame)
            case protocol.Dtmf():
                if self._accepts(frame):
                    self._on_dtmf(frame)
            case protocol.Start():
                self._on_start(frame)
            case protocol.Connected():
                pass
            case protocol.FrameError(kind=kind, detail=detail):
                self.node.metrics.bad_input(kind, self._call_id(), detail)
            case protocol.Stop():
                pass  # handled by the loop

    async def _on_media(self, frame: protocol.Media) -> None:
        call = self.call
        assert call is not None
        if frame.track not in ("inbound", "inbound_track"):
            self.node.metrics.incr("media.other_track")
            return
        recording = call.recording
        sink: list[bytes] | None = [] if recording is not None else None
        result = call.session.on_media(frame, now_ms=monotonic_ms(), pcm8k_sink=sink)
        if result.bridge_frames:
            call.caller_audio_ready()
        if recording is not None and sink:
            recording.add_caller(frame.timestamp_ms, b"".join(sink))
        for event in result.speech:
            if isinstance(event, SpeechStarted):
                call.publish(CallerSpeechStarted(**call.envelope(), stream_ms=event.stream_ms))
            else:
                call.publish(
                    CallerSpeechStopped(
                        **call.envelope(), stream_ms=event.stream_ms, duration_ms=event.duration_ms
                    )
                )
        if result.barge_in:
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
        stream_ms = call.session.last_stream_ms
        call.publish(PlaybackMarkReached(**call.envelope(), mark_name=frame.name, stream_ms=stream_ms))
        call.notify_worker(bridge.MarkReached(name=frame.name, stream_ms=stream_ms))

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
        params = _stream_parameters(frame, self.node)
        if params is None:
            self.node.metrics.bad_input("start_without_call", "", f"callSid {frame.call_sid[:64]}")
            return
        if params.call_id in self.node.calls:
            self.node.metrics.bad_input("duplicate_stream", params.call_id, frame.stream_sid[:64])
            return
        identity = CallIdentity(params=params, stream_sid=frame.stream_sid, call_sid=frame.call_sid)
        call = LiveCall(self.node, self.websocket, identity, started_ms=monotonic_ms())
        call.session.sequence.observe(frame.sequence_number)
        self.call = call
        self.node.register(call.call_id, call)
        grant = self.node.grant(call.call_id)
        call.publish(
            MediaStreamStarted(
                **call.envelope(),
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
