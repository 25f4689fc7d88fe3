"""The imperative shell around the call decider: decode, skip repeated inputs, decide, emit, store."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.calls import CallInput, CallReceived, ClockTicked
from schemas.codec import Codec, DecodeError
from schemas.ids import CallId, CorrelationId, EventId
from streams.calls.conflicts import conflict
from streams.calls.machine import decide, evolve
from streams.calls.repeats import is_repeat, remember
from streams.calls.snapshot import Snapshot, dump, load
from streams.calls.state import CallLimits, CallState
from streams.calls.timers import on_tick

log = logging.getLogger(__name__)

EmitEvent = Callable[[bytes, bytes], Awaitable[None]]
"""Send (key, value) to the call events topic and wait until the broker has it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling one input did: the new snapshot to store (if any) and the events emitted."""

    snapshot: bytes | None
    emitted: int
    error: str | None = None
    forget: bool = False
    """Delete the call from the table: it ended longer than the retention ago."""
    repeat: bool = False
    """The input was a re-sent copy of one already applied, and was skipped."""
    conflict: str | None = None
    """The input contradicts its call (another tenant's, another call's CallReceived): changed nothing."""


class CallInputHandler:
    """Applies one consumed input to a call; shared by the Faust agent and tests."""

    def __init__(
        self, codec: Codec, default_limits: CallLimits, *, ended_retention: timedelta | None = None
    ) -> None:
        self._codec = codec
        self._default_limits = default_limits
        self._ended_retention = ended_retention

    async def handle(
        self,
        stored: bytes | None,
        value: bytes,
        offset: int,
        emit: EmitEvent,
        after_emit: Callable[[CallId], None] | None = None,
    ) -> Outcome:
        try:
            input_ = self._codec.decode(value)
        except DecodeError as err:
            return Outcome(None, 0, f"undecodable: {err}")
        if not isinstance(input_, CallInput):
            return Outcome(None, 0, f"not a call input: {type(input_).__name__}")
        snapshot = load(stored) if stored is not None else None
        if snapshot is not None and offset <= snapshot.input_offset:
            return Outcome(None, 0)  # re-delivered after a crash: already applied
        if snapshot is not None and is_repeat(snapshot.recent_input_ids, input_):
            # Re-sent by its producer after a lost ack: the log keeps both copies, the call one.
            log.info("call %s: input %s already applied, skipped", input_.call_id, input_.event_id)
            return Outcome(None, 0, repeat=True)
        state = snapshot.state if snapshot else None
        if state is not None and self._forgettable(state, input_):
            return Outcome(None, 0, forget=True)
        problem = conflict(state, input_)
        if problem is not None:
            return Outcome(None, 0, conflict=problem)
        limits = self._limits(snapshot, input_)
        events = decide(state, input_, limits)
        if not events and isinstance(input_, ClockTicked):
            # A tick that fires no timer leaves the state as it was: storing it again would
            # only move the offset, a changelog write per live call per second for nothing.
            # Read again after a crash, the same tick decides the same nothing.
            return Outcome(None, 0)
        for event in events:
            await emit(event.call_id.encode(), self._codec.encode(event))
            state = evolve(state, event)
        if events and after_emit is not None:
            after_emit(events[0].call_id)
        if state is None:
            # Nothing to apply it to (a call this worker never received, or one long forgotten):
            # it stays in the inputs log, and saying so here is what makes it findable.
            kind = type(input_).__name__
            log.info("call %s: %s at offset %d is for no known call", input_.call_id, kind, offset)
            return Outcome(None, 0)
        recent = remember(snapshot.recent_input_ids if snapshot else (), input_)
        stored_next = Snapshot(state=state, input_offset=offset, limits=limits, recent_input_ids=recent)
        return Outcome(dump(stored_next), len(events))

    def _forgettable(self, state: CallState, input_: CallInput) -> bool:
        # Decided on the tick's own time, so a tick re-processed after a crash decides the same.
        ended = state.ended_since
        if self._ended_retention is None or ended is None or not isinstance(input_, ClockTicked):
            return False
        return input_.now - ended >= self._ended_retention

    def _limits(self, snapshot: Snapshot | None, input_: CallInput) -> CallLimits:
        # Limits are pinned by the call's first event, so replays enforce the same ones.
        if snapshot is not None:
            return snapshot.limits
        if isinstance(input_, CallReceived):
            return CallLimits(
                max_duration_s=input_.max_duration_s
                if input_.max_duration_s is not None
                else self._default_limits.max_duration_s,
                silence_timeout_s=input_.silence_timeout_s
                if input_.silence_timeout_s is not None
                else self._default_limits.silence_timeout_s,
            )
        return self._default_limits


def clock_tick(state: CallState, now: datetime) -> ClockTicked:
    """The tick a worker sends for a live call it owns (or for an ended one, to forget it)."""
    return ClockTicked(
        tenant_id=state.tenant_id,
        call_id=state.call_id,
        seq=0,
        event_id=EventId(str(uuid.uuid4())),
        occurred_at=now,
        correlation_id=CorrelationId(state.call_id),
        now=now,
    )


def due_tick(state: CallState, limits: CallLimits, now: datetime) -> ClockTicked | None:
    """The tick to send for a live call at now, or None when it would fire no timer.

    A tick that fires nothing changes nothing (the handler does not even store it), so it is
    not worth a record in the inputs log: one per live call per second, which the embedded
    broker would keep in memory for ever. The worker's view of the state may lag the agent's by
    an input still in flight; the agent decides on its own state, and a timer that view hid is
    caught by the next tick.
    """
    tick = clock_tick(state, now)
    return tick if on_tick(state, tick, limits) else None
