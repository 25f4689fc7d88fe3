"""One live call on this edge: its Twilio socket, its bridge worker, its paced playback and its facts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from edge import protocol
from edge.audio import mulaw
from edge.audio.vad import SpeechStopped
from edge.node import EdgeNode, monotonic_ms
from edge.playback import AudioItem, Cleared, MarkItem
from edge.playback_clock import FRAME_S, MAX_LAG_S
from edge.recording import CallRecording, store_recording
from edge.session import MediaSession
from edge.twiml import UNAVAILABLE_MESSAGE, StreamParameters
from edge.wsframe import BINARY, server_frame
from schemas import bridge
from schemas.call_media import (
    AgentInterrupted,
    CallerSpeechStopped,
    MediaStreamStopped,
    PlaybackMarkReached,
    RecordingAvailable,
)
from schemas.envelope import derive_event_id
from schemas.ids import CallId, CorrelationId, TenantId
from schemas.registry import Record

log = logging.getLogger(__name__)
_BRIDGE_WRITE_LIMIT = 2**15  # the websockets library's default high-water mark
_NOTICES_KEPT = 256  # marks, DTMF and barge-ins held for a worker not yet (re)connected
_LONG_MAX = 2**63 - 1  # the event log's ``long``
_SLACK_S = 0.002  # a frame due within one clock slot is sent now (timers fire up to 1 ms early)


class TwilioSocket(Protocol):
    """What a call needs of the Twilio WebSocket."""

    async def send_text(self, data: str) -> None: ...

    def try_send_text(self, data: str) -> bool:
        """Send now if the socket takes it at once; False (nothing sent): use ``send_text``."""
        ...

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
        self.worker_id: str | None = None
        """The id the attached worker named itself by (``bridge.WORKER_HEADER``), if it did."""
        self._replaced_ids: set[str] = set()
        """Ids of workers replaced on this call: refused while another worker is attached."""
        self.notices: deque[str] = deque(maxlen=_NOTICES_KEPT)
        self.stop_reason: str | None = None
        self.ending = False
        """Set as ``finish`` begins: a worker arriving from then on is refused (the call ended)."""
        self._seq = 0
        self._loop = asyncio.get_running_loop()
        self.sending_since: float | None = None
        self._pumping = False  # _pump_worker is sending: direct writes would overtake it
        self._sending_to: ServerConnection | None = None  # the worker the pump is sending to
        self._abandons = 0  # cancellations of the pump by ``_abandon_sends`` not yet handled
        self.worker_sending_since: float | None = None
        """Loop time the pump's current send to the worker began (None when not sending)."""
        self.last_arrival: float | None = None
        """``perf_counter()`` when the latest caller frame arrived (for the bridge latency figure)."""
        self.without_agent_since: float | None = self._loop.time()
        """Loop time since when no worker is on the bridge (None while one is, or once reported)."""
        self._to_worker = asyncio.Event()
        self._next_frame_at = 0.0  # loop time the next playback frame is due
        self._on_clock = False  # on the node's playback clock (``on_tick``)
        self._slot = 0  # the clock's phase the call plays on, chosen when the queue was idle
        self._stalled: asyncio.Task[None] | None = None  # a playback send waiting for the socket
        self._pump = asyncio.create_task(self._pump_worker(), name=f"bridge-out-{self.call_id}")
        self._tasks = [self._pump]

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
        worker = self.worker
        if worker is None or self._pumping or self.notices or not self._write_caller_audio(worker):
            self._to_worker.set()

    def _write_caller_audio(self, worker: ServerConnection) -> bool:
        """Write the buffered caller frames to the worker now, if its socket takes them at once.

        The common case, and the hottest path of the node: no task switch and no
        ``send_context`` per frame. Whatever is not simple (a closing connection, a full
        socket buffer, the pump already sending) is left to ``_pump_worker``, which waits for
        the socket to drain; the order of frames is the same either way.
        """
        transport = worker.transport
        protocol = worker.protocol
        if (
            protocol.state is not State.OPEN
            or transport.is_closing()
            or transport.get_write_buffer_size() >= _BRIDGE_WRITE_LIMIT
        ):
            return False
        for data in protocol.data_to_send():  # whatever the protocol queued goes first
            transport.write(data)
        caller = self.session.caller
        while (frame := caller.pop()) is not None:
            transport.write(server_frame(BINARY, frame))  # the bridge has no extensions
        arrival = self.last_arrival
        if arrival is not None:
            self.node.metrics.bridge_latency_s.append(perf_counter() - arrival)
        return True

    def notify_worker(self, message: bridge.EdgeToWorker) -> None:
        encoded = bridge.encode(message)
        assert isinstance(encoded, str)
        if len(self.notices) == _NOTICES_KEPT:  # the oldest goes: say so
            self.node.metrics.incr("bridge.notices_dropped")
        self.notices.append(encoded)
        self._to_worker.set()

    def refuses_worker(self, worker_id: str | None) -> bool:
        """Is ``worker_id`` a worker replaced on this call while another worker serves it?

        A replaced worker that was only stalled (its 4409 dropped with its connection) would
        reconnect with the call's token and take the call back from its successor. Once no worker
        is attached it may come back (the call's partition moved back to it). A connection that
        names no worker, or the attached worker's own reconnection, is never refused.
        """
        return (
            worker_id is not None
            and worker_id in self._replaced_ids
            and self.worker is not None
            and worker_id != self.worker_id
        )

    def attach_worker(
        self, worker: ServerConnection, worker_id: str | None = None
    ) -> ServerConnection | None:
        """Make ``worker`` the call's bridge peer; returns the one it replaces."""
        previous, self.worker = self.worker, worker
        if previous is not None and self.worker_id is not None and self.worker_id != worker_id:
            self._replaced_ids.add(self.worker_id)
        self.worker_id = worker_id
        if worker_id is not None:
            self._replaced_ids.discard(worker_id)
        self.without_agent_since = None
        self._abandon_sends(worker)
        self._to_worker.set()
        return previous

    def detach_worker(self, worker: ServerConnection) -> None:
        if self.worker is worker:
            self.worker = None
            self.worker_id = None
            self.without_agent_since = self._loop.time()
            self._abandon_sends(None)

    def _abandon_sends(self, keep: ServerConnection | None) -> None:
        """Stop the pump waiting on a worker that is no longer the call's (a hung one being
        replaced waits for ever): what it had not sent goes to the current worker instead.

        The pump awaits its sends itself (no task per round: a round is the hot path while a
        worker's socket is over its high-water mark); it is cancelled here, and takes the
        cancellation it is told about (``_abandons``) for an abandoned round, not its end.
        """
        sending_to = self._sending_to
        if sending_to is None or sending_to is keep or asyncio.current_task() is self._pump:
            return
        self._sending_to = None  # abandon once
        self._abandons += 1
        self._pump.cancel()
        self.worker_sending_since = None  # not a stall of the worker left behind

    def check_worker(self, now: float) -> None:
        """Watchdog: a worker that has not taken a frame within ``bridge_send_timeout_s`` is stuck.

        Its connection is dropped: the pump is free again, the call buffers for the next worker
        and the no-agent wait starts (a worker that is only slow reconnects with its token).
        """
        since = self.worker_sending_since
        worker = self._sending_to
        if since is None or worker is None or now - since <= self.node.settings.edge.bridge_send_timeout_s:
            return
        self.worker_sending_since = None  # report once
        self.node.metrics.incr("bridge.worker_stalled")
        log.warning("call %s: the worker took no frame for %.1f s; dropped", self.call_id, now - since)
        self.detach_worker(worker)
        self._abandon_sends(None)
        with contextlib.suppress(Exception):
            worker.transport.abort()

    def check_agent(self, now: float) -> None:
        """Watchdog: a call no worker has been serving for ``agent_wait_s`` is ended, politely.

        Nobody else would end it: Twilio sends frames all the time, so the idle timeout never
        fires, and the caller would sit in silence until they hung up. It happens when no worker
        ever comes (the call's log ended before the stream started, a worker died and none took
        over) or when failover does not finish.
        """
        since = self.without_agent_since
        wait = self.node.settings.edge.agent_wait_s
        if since is None or not wait or now - since <= wait or self.ending or self.stop_reason:
            return
        self.without_agent_since = None  # report once
        # Set now: Twilio stops the stream itself when it leaves it for the apology, and that
        # stop must not read as the caller hanging up.
        self.stop_reason = "no_agent"
        self.node.metrics.incr("streams.no_agent")
        log.warning("call %s: no session worker for %.0f s; ending it", self.call_id, now - since)
        self._tasks.append(asyncio.create_task(self._end_without_agent(), name=f"no-agent-{self.call_id}"))

    async def _end_without_agent(self) -> None:
        """Tell the caller why (Twilio leaves the stream for a spoken apology), then end the stream."""
        await self.node.telephony.say_and_hang_up(self.identity.call_sid, UNAVAILABLE_MESSAGE)
        await self.end("no_agent")

    async def _pump_worker(self) -> None:
        while True:
            await self._to_worker.wait()
            self._to_worker.clear()
            worker = self.worker
            if worker is None:
                continue  # keep buffering (bounded) until a worker connects
            self._pumping = True
            # A worker replaced or dropped while a send waits on its full socket must not hold
            # the pump (a hung worker's socket never drains): ``_abandon_sends`` cancels it.
            self._sending_to = worker
            try:
                await self._send_to_worker(worker)
            except asyncio.CancelledError:
                if not self._abandoned():
                    raise  # the call finishes
                self._to_worker.set()  # the next round serves the current worker, if any
            except ConnectionClosed:
                self._sending_to = None
                self.detach_worker(worker)
            finally:
                self._sending_to = self.worker_sending_since = None
                self._pumping = False

    def _abandoned(self) -> bool:
        """Was the pump's cancellation only ``_abandon_sends`` (the pump goes on), not its end?"""
        pump = self._pump
        while self._abandons:
            self._abandons -= 1
            pump.uncancel()
        return not pump.cancelling()

    async def _send_to_worker(self, worker: ServerConnection) -> None:
        """Send the held notices, then the buffered caller audio; what is not sent stays held."""
        caller = self.session.caller
        loop = self._loop
        while self.notices:
            self.worker_sending_since = loop.time()
            await worker.send(self.notices[0])
            self.notices.popleft()
        sent = False
        while (frame := caller.pop()) is not None:
            self.worker_sending_since = loop.time()
            try:
                await worker.send(frame)
            except (ConnectionClosed, asyncio.CancelledError):
                caller.push_front(frame)
                raise
            sent = True
        self.worker_sending_since = None
        arrival = self.last_arrival
        if sent and arrival is not None:
            self.node.metrics.bridge_latency_s.append(perf_counter() - arrival)

    # --- towards Twilio ---------------------------------------------------------------------

    def playback_ready(self) -> None:
        """Agent audio or a mark was queued: play it at real-time pace, from the next frame due.

        Called from the bridge's directives. A queue that was idle sends its first frame now;
        the rest go out from the node's playback clock (``on_tick``).
        """
        if self._on_clock or self._stalled is not None or self.ending:
            return
        now = self._loop.time()
        self._next_frame_at = max(self._next_frame_at, now)
        self._slot = self.node.playback_clock.next_slot()  # the phase that fires next
        self._resume(now)

    def _resume(self, now: float) -> None:
        """Send what is due, then wait on the call's phase of the clock if more is queued."""
        if self._play_due(now):
            self._on_clock = True
            self.node.playback_clock.join(self._slot, self)

    def on_tick(self, now: float) -> bool:
        """The playback clock's call, once a frame period: send what is due; False leaves it."""
        self._on_clock = False  # the clock drops a player that raises: let its next audio rejoin
        self._on_clock = self._play_due(now)
        return self._on_clock

    def _play_due(self, now: float) -> bool:
        """Send the queued items due by ``now``; True while more audio waits for its time.

        Synchronous: a frame goes straight to the socket when it takes it (the common case);
        otherwise ``_send_stalled`` waits for the socket in a task, and pacing resumes from there.
        """
        if self.ending:
            return False
        playback = self.session.playback
        while len(playback):
            if self._next_frame_at - now > _SLACK_S:
                return True
            item = playback.pop()
            if item is None:
                continue
            if isinstance(item, AudioItem):
                text = protocol.media_message(self.stream_sid, item.mulaw)
            else:
                text = protocol.mark_message(self.stream_sid, item.name)
            if not self.twilio.try_send_text(text):
                self._stalled = asyncio.create_task(
                    self._send_stalled(item, text), name=f"playback-{self.call_id}"
                )
                return False
            self._played(item, now)
        return False

    def _played(self, item: AudioItem | MarkItem, now: float) -> None:
        if not isinstance(item, AudioItem):
            return  # a mark takes no time on the line
        self.session.last_agent_frame_ms = now * 1000.0
        if self.recording is not None:
            self.recording.add_heard_frame(self.stream_ms(), mulaw.decode_to_bytes(item.mulaw))
        self._next_frame_at = max(self._next_frame_at + FRAME_S, now - MAX_LAG_S)

    async def _send_stalled(self, item: AudioItem | MarkItem, text: str) -> None:
        """The socket did not take a frame at once (full, or not a direct socket): wait for it."""
        try:
            if not await self.send_twilio(text):
                return  # the socket is gone; the receive loop stops the call
            self._played(item, self._loop.time())
        finally:
            self._stalled = None
        # Go on with the queue on the same phase: a new one at each stall would fall a little
        # further behind the schedule every frame, then send a burst to catch up.
        self._resume(self._loop.time())

    async def send_twilio(self, text: str) -> bool:
        """Send one frame to Twilio; False when the socket is gone (the receive loop then stops).

        No timer per frame: ``sending_since`` is set while a send is held up by a full socket,
        and the node's watchdog ends a call whose client takes longer than the send timeout.
        """
        try:
            self.sending_since = self._loop.time()
            await self.twilio.send_text(text)
        except Exception as exc:  # the socket is gone; the receive loop will notice and stop
            log.debug("send to Twilio failed for %s: %s", self.call_id, exc)
            return False
        finally:
            self.sending_since = None
        return True

    def check_send(self, now: float) -> None:
        """Watchdog: a client that has not taken a frame within the send timeout is stuck."""
        since = self.sending_since
        if since is None or now - since <= self.node.settings.edge.twilio_send_timeout_s:
            return
        self.sending_since = None  # report once
        self.node.metrics.bad_input("slow_client", self.call_id, "Twilio socket did not take a frame")
        self._tasks.append(asyncio.create_task(self.end("error"), name=f"stuck-{self.call_id}"))

    async def clear_playback(self, source: str) -> Cleared:
        """Drop queued agent audio, flush Twilio's buffer, and record what the caller heard."""
        # The edge's own barge-in spares an utterance newer than the one the caller hears; a
        # worker's clear (the model was interrupted) drops all it sent.
        cleared = self.session.playback.clear(keep_newer=source == "edge_vad")
        if self.recording is not None:
            self.recording.reanchor_heard()
        await self.send_twilio(protocol.clear_message(self.stream_sid))
        # Any clear that cuts an utterance is recorded, even with nothing queued: audio that
        # arrives just in time (a model talking in real time) leaves the queue empty mid-sentence.
        if cleared.utterance_id:
            self.publish(
                AgentInterrupted(
                    **self.envelope(),
                    utterance_id=cleared.utterance_id,
                    played_ms=cleared.played_ms,
                    total_ms=cleared.total_ms,
                    source=source,
                )
            )
        # Twilio returns its pending marks when it clears; the marks still queued here are
        # returned the same way, or a worker waiting on one (a goodbye before a hang-up) would
        # wait out its timeout.
        for name in cleared.marks_dropped:
            self.mark_reached(name)
        return cleared

    def mark_reached(self, name: str) -> None:
        """Playback has passed the mark ``name``: record it and tell the worker."""
        stream_ms = self.session.last_stream_ms
        self.publish(PlaybackMarkReached(**self.envelope(), mark_name=name, stream_ms=stream_ms))
        self.notify_worker(bridge.MarkReached(name=name, stream_ms=stream_ms))

    # --- ending -----------------------------------------------------------------------------

    def ending_because(self, reason: str, *, instead_of: str | None = None) -> None:
        """Name why the stream is about to stop, before asking Twilio to stop it: Twilio's own
        ``stop`` can arrive before its REST answer, and would read as the caller hanging up.
        The first reason stands, unless it is ``instead_of`` (a transfer that failed after all)."""
        if self.stop_reason is None or self.stop_reason == instead_of:
            self.stop_reason = reason

    async def end(self, reason: str) -> None:
        """Ask the call to end: close the Twilio socket; the receive loop then finishes up."""
        if self.stop_reason is None:
            self.stop_reason = reason
        with contextlib.suppress(Exception):
            await self.twilio.close(1000 if reason != "edge_shutdown" else 1001)

    async def finish(self, reason: str) -> None:
        """Called once when the Twilio socket is done, whatever the cause."""
        self.ending = True
        reason = self.stop_reason or reason
        tasks = [*self._tasks, self._stalled] if self._stalled is not None else self._tasks
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        session = self.session
        speech = session.finish()  # a caller still talking at hang-up: the utterance ends here
        if isinstance(speech, SpeechStopped):
            self.publish(
                CallerSpeechStopped(
                    **self.envelope(), stream_ms=speech.stream_ms, duration_ms=speech.duration_ms
                )
            )
        sequence = session.sequence
        self.publish(
            MediaStreamStopped(
                **self.envelope(),
                stream_sid=self.stream_sid,
                reason=reason,
                frames_received=session.frames_received,
                # A resync after a bogus sequence number can count any number of gaps.
                frames_gaps=min(sequence.gaps, _LONG_MAX),
                frames_dropped=min(session.caller.dropped + sequence.late + sequence.jumps, _LONG_MAX),
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
        name = f"{self.call_id}.wav"
        target = self.node.settings.recordings_target  # fsspec makes a local path absolute
        try:
            stored, duration_ms = await asyncio.to_thread(store_recording, recording, target, name)
        except Exception:  # a full disk or an unreachable bucket must not take the node down
            log.exception("could not store the recording of %s in %s", self.call_id, target)
            self.node.metrics.incr("recordings.failed")
            return
        base = edge.public_recordings_base_uri
        uri = f"{base.rstrip('/')}/{name}" if base else stored
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
