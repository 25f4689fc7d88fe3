"""One live call on this edge: its Twilio socket, its bridge worker, its paced playback and its facts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from edge import protocol
from edge.audio import mulaw
from edge.audio.framing import FRAME_MS
from edge.node import EdgeNode, monotonic_ms
from edge.playback import AudioItem, Cleared
from edge.recording import CallRecording
from edge.session import MediaSession
from edge.twiml import StreamParameters
from schemas import bridge
from schemas.call_media import AgentInterrupted, MediaStreamStopped, RecordingAvailable
from schemas.envelope import derive_event_id
from schemas.ids import CallId, CorrelationId, TenantId
from schemas.registry import Record

log = logging.getLogger(__name__)
_FRAME_S = FRAME_MS / 1000.0
_MAX_LAG_S = 0.2  # behind schedule by more than this: restart the clock instead of bursting


class TwilioSocket(Protocol):
    """What a call needs of the Twilio WebSocket (Starlette's WebSocket has it)."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CallIdentity:
    """Who the call is, from the ``start`` frame."""

    params: StreamParameters
    stream_sid: str
    call_sid: str


class LiveCall:
    """The imperative shell around a ``MediaSession``: tasks, sockets, facts."""

    def __init__(
        self, node: EdgeNode, twilio: TwilioSocket, identity: CallIdentity, started_ms: float
    ) -> None:
        self.node = node
        self.twilio = twilio
        self.identity = identity
        self.call_id = identity.params.call_id
        self.stream_sid = identity.stream_sid
        self.session = MediaSession(node.session_config)
        self.recording = CallRecording() if identity.params.record else None
        self.started_ms = started_ms
        self.worker: ServerConnection | None = None
        self.notices: deque[str] = deque(maxlen=256)
        self.stop_reason: str | None = None
        self._seq = 0
        self._send_lock = asyncio.Lock()
        self._to_worker = asyncio.Event()
        self._to_twilio = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._pump_worker(), name=f"bridge-out-{self.call_id}"),
            asyncio.create_task(self._pace_playback(), name=f"playback-{self.call_id}"),
        ]

    # --- facts ------------------------------------------------------------------------------

    def envelope(self) -> dict[str, Any]:
        """Envelope fields of the next fact: the edge's own per-stream counter, derived ids."""
        self._seq += 1
        return {
            "tenant_id": TenantId(self.identity.params.tenant_id),
            "call_id": CallId(self.call_id),
            "seq": self._seq,
            "event_id": derive_event_id(self.call_id, self._seq, f"edge.media.{self.stream_sid}"),
            "occurred_at": datetime.now(UTC),
            "correlation_id": CorrelationId(self.call_id),
        }

    def publish(self, record: Record) -> None:
        self.node.publisher.publish(record)

    def stream_ms(self) -> int:
        return int(monotonic_ms() - self.started_ms)

    # --- towards the worker -----------------------------------------------------------------

    def caller_audio_ready(self) -> None:
        self._to_worker.set()

    def notify_worker(self, message: bridge.EdgeToWorker) -> None:
        encoded = bridge.encode(message)
        assert isinstance(encoded, str)
        self.notices.append(encoded)
        self._to_worker.set()

    def attach_worker(self, worker: ServerConnection) -> ServerConnection | None:
        """Make ``worker`` the call's bridge peer; returns the one it replaces."""
        previous, self.worker = self.worker, worker
        self._to_worker.set()
        return previous

    def detach_worker(self, worker: ServerConnection) -> None:
        if self.worker is worker:
            self.worker = None

    async def _pump_worker(self) -> None:
        caller = self.session.caller
        while True:
            await self._to_worker.wait()
            self._to_worker.clear()
            worker = self.worker
            if worker is None:
                continue  # keep buffering (bounded) until a worker connects
            try:
                while self.notices:
                    await worker.send(self.notices[0])
                    self.notices.popleft()
                while (frame := caller.pop()) is not None:
                    try:
                        await worker.send(frame)
                    except ConnectionClosed:
                        caller.push_front(frame)
                        raise
            except ConnectionClosed:
                self.detach_worker(worker)

    # --- towards Twilio ---------------------------------------------------------------------

    def playback_ready(self) -> None:
        self._to_twilio.set()

    async def send_twilio(self, text: str) -> bool:
        """Send one frame to Twilio; a client that does not take it in time is stuck: end the call."""
        try:
            async with self._send_lock:
                await asyncio.wait_for(
                    self.twilio.send_text(text), self.node.settings.edge.twilio_send_timeout_s
                )
        except TimeoutError:
            self.node.metrics.bad_input("slow_client", self.call_id, "Twilio socket did not take a frame")
            await self.end("error")
            return False
        except Exception as exc:  # the socket is gone; the receive loop will notice and stop
            log.debug("send to Twilio failed for %s: %s", self.call_id, exc)
            return False
        return True

    async def _pace_playback(self) -> None:
        loop = asyncio.get_running_loop()
        playback = self.session.playback
        next_at = loop.time()
        while True:
            if not len(playback):
                await self._to_twilio.wait()
                self._to_twilio.clear()
                next_at = max(next_at, loop.time())
                continue
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # sleep first: a clear during the wait drops the frame
            item = playback.pop()
            if item is None:
                continue
            if not isinstance(item, AudioItem):
                await self.send_twilio(protocol.mark_message(self.stream_sid, item.name))
                continue
            await self.send_twilio(protocol.media_message(self.stream_sid, item.mulaw))
            now = loop.time()
            self.session.last_agent_frame_ms = now * 1000.0
            if self.recording is not None:
                self.recording.add_heard(self.stream_ms(), mulaw.decode_to_bytes(item.mulaw))
            next_at = max(next_at + _FRAME_S, now - _MAX_LAG_S)

    async def clear_playback(self, source: str) -> Cleared:
        """Drop queued agent audio, flush Twilio's buffer, and record what the caller heard."""
        cleared = self.session.playback.clear()
        await self.send_twilio(protocol.clear_message(self.stream_sid))
        if cleared.utterance_id and (cleared.frames_dropped or source == "edge_vad"):
            self.publish(
                AgentInterrupted(
                    **self.envelope(),
                    utterance_id=cleared.utterance_id,
                    played_ms=cleared.played_ms,
                    total_ms=cleared.total_ms,
                    source=source,
                )
            )
        return cleared

    # --- ending -----------------------------------------------------------------------------

    async def end(self, reason: str) -> None:
        """Ask the call to end: close the Twilio socket; the receive loop then finishes up."""
        if self.stop_reason is None:
            self.stop_reason = reason
        with contextlib.suppress(Exception):
            await self.twilio.close(1000 if reason != "edge_shutdown" else 1001)

    async def finish(self, reason: str) -> None:
        """Called once when the Twilio socket is done, whatever the cause."""
        reason = self.stop_reason or reason
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        session = self.session
        self.publish(
            MediaStreamStopped(
                **self.envelope(),
                stream_sid=self.stream_sid,
                reason=reason,
                frames_received=session.frames_received,
                frames_gaps=session.sequence.gaps,
                frames_dropped=session.caller.dropped + session.sequence.late,
            )
        )
        await self._close_worker(reason)
        if self.recording is not None:
            await self._store_recording(self.recording)

    async def _close_worker(self, reason: str) -> None:
        worker = self.worker
        if worker is None:
            return
        code = bridge.CLOSE_EDGE_SHUTDOWN if reason == "edge_shutdown" else bridge.CLOSE_CALL_ENDED
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.send(bridge.encode_text(bridge.StreamStopped(reason=reason))), 1.0)
            await asyncio.wait_for(worker.close(code, "call ended"), 2.0)

    async def _store_recording(self, recording: CallRecording) -> None:
        edge = self.node.settings.edge
        path = Path(edge.recordings_dir) / f"{self.call_id}.wav"
        try:
            duration_ms = await asyncio.to_thread(recording.write_wav, path)
        except OSError:
            log.exception("could not write the recording of %s", self.call_id)
            self.node.metrics.incr("recordings.failed")
            return
        base = edge.public_recordings_base_uri
        uri = f"{base.rstrip('/')}/{path.name}" if base else path.resolve().as_uri()
        self.publish(
            RecordingAvailable(
                **self.envelope(),
                uri=uri,
                duration_ms=duration_ms,
                channels=2,
                sample_rate=8000,
                format="wav",
            )
        )
