"""The dialer's imperative shell: decode, step the tenant's state, publish events, dial.

Shared by the Faust app and tests. It holds one ``DialerState`` per tenant in memory; on
start the state is rebuilt by folding the dialer's own event log and the agent definitions
(``rebuild``), so a restarted worker carries on where the log says it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from infra.kafka import send_until_acknowledged
from schemas.agents import AgentArchived, AgentVersionPublished
from schemas.calls import CallEnded, CallFailed, HangUpRequested, TelephonyStatusChanged
from schemas.catalog import DIALER_EVENTS, DIALER_REQUESTS
from schemas.codec import Codec, DecodeError
from schemas.dialer import (
    CallAttemptStarted,
    CallDialFailed,
    CallDialled,
    CancelCampaign,
    CancelPlaceCall,
    CreateCampaign,
    DialerEvent,
    MachineAnswerHandled,
    PauseCampaign,
    PlaceCall,
    ResumeCampaign,
)
from schemas.ids import CallId, TenantId
from streams.dialer.cancellation import fold_report, follow_call
from streams.dialer.decider import DialerInput, DialerOptions, Tick, step
from streams.dialer.dialling import HANG_UP_BACKOFF_S, Dialling, Send, utc_now
from streams.dialer.recovery import CallLogSearch, call_log_search, never_dialled, unreported
from streams.dialer.state import Attempt, DialerState, advance, evolve, observe_agent
from streams.telephony.port import Telephony

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of the dialer's own clock an input's occurred_at may be."""


class Refusal(NamedTuple):
    """Why the dialer will not apply a record: a dead letter's reason and its detail."""

    reason: str
    detail: str


SEND_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0)
"""Between attempts to publish a dialer event while the broker is away (then every 5 s)."""

_INPUTS = (
    PlaceCall,
    CancelPlaceCall,
    CallDialled,
    CallDialFailed,
    CreateCampaign,
    PauseCampaign,
    ResumeCampaign,
    CancelCampaign,
    TelephonyStatusChanged,
    CallEnded,
    CallFailed,
    HangUpRequested,
)
ROUTED = (*_INPUTS, AgentVersionPublished, AgentArchived)
"""Record types the dialer consumes (re-keyed by tenant before it sees them)."""


def _writes_to_wait_for(events: list[DialerEvent]) -> list[bool]:
    """Which sends to await before acting: the last of each agent's, when any event dials or hangs up.

    A dial must never happen unrecorded: a restarted dialer rebuilds from its events and would
    place the same attempt again. Events of one agent share a partition, so the broker taking the
    last one means it took those before it (in order, one batch in flight per partition);
    decisions that act on nothing are not waited for.
    """
    if not any(isinstance(event, CallAttemptStarted | MachineAnswerHandled) for event in events):
        return [False] * len(events)
    last = {event.agent_id: index for index, event in enumerate(events)}
    return [last[event.agent_id] == index for index, event in enumerate(events)]


class DialerShell:
    """Per-tenant states, the step loop, and the side effects (``Dialling``) its events call for."""

    def __init__(
        self,
        codec: Codec,
        options: DialerOptions,
        telephony: Telephony,
        *,
        send: Send,
        send_and_wait: Send,
        max_in_flight: int = 200,
        send_backoff_s: Sequence[float] = SEND_BACKOFF_S,
        now: Callable[[], datetime] = utc_now,
        hang_up_backoff_s: Sequence[float] = HANG_UP_BACKOFF_S,
    ) -> None:
        self._now = now
        self._codec = codec
        self._send_backoff_s = send_backoff_s
        self._options = options
        self._send = send
        self._send_and_wait = send_and_wait
        self._dialling = Dialling(
            codec,
            telephony,
            send_and_wait=send_and_wait,
            send_backoff_s=send_backoff_s,
            hang_up_backoff_s=hang_up_backoff_s,
            now=now,
            max_in_flight=max_in_flight,
        )
        self._locks: dict[TenantId, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.states: dict[TenantId, DialerState] = {}
        self._reported: set[CallId] = set()
        """The attempts a dial report was folded for by ``rebuild``."""

    def state(self, tenant_id: TenantId) -> DialerState:
        found = self.states.get(tenant_id)
        if found is None:
            found = self.states[tenant_id] = DialerState(tenant_id=tenant_id)
        return found

    def rebuild(self, records: Iterable[object], now: datetime | None = None) -> None:
        """Fold agent definitions and the dialer's own events, in log order, then the dial
        reports (the calls' sids, and the waits for the sid of a dial reported failed), into the
        states.

        ``now`` (when the worker starts) moves every clock on: the log knows only when events
        were decided, and an input read after a restart must not be decided earlier than now.
        Attempts no report speaks of are then for ``unreported`` and ``report_never_dialled``.
        """
        reports: list[CallDialled | CallDialFailed] = []
        for record in records:
            if isinstance(record, AgentVersionPublished | AgentArchived):
                self._observe(record)
            elif isinstance(record, DialerEvent):
                state = self.state(record.tenant_id)
                if record.seq <= state.seqs.get(record.agent_id, 0):
                    continue  # a copy re-sent after a lost ack: each agent's seq only grows
                evolve(state, record)
            elif isinstance(record, CallDialled | CallDialFailed):
                reports.append(record)
        # After the events: a report read before its attempt's start (another topic) would be lost.
        for report in reports:
            fold_report(self.state(report.tenant_id), report)
            self._reported.add(report.attempt_call_id)
        if now is not None:
            for state in self.states.values():
                advance(state, now)

    def unreported(self) -> list[CallId]:
        """After ``rebuild``: live attempts no dial report speaks of, whose dial the previous
        worker may have stopped before it went out (``recovery``); the call log tells which."""
        return [attempt.attempt_call_id for attempt in self._unreported()]

    def call_log_search(self) -> CallLogSearch | None:
        """After ``rebuild``: where the call log can hold the ``CallReceived`` of the unreported
        attempts (``recovery.call_log_search``); None when there are none."""
        return call_log_search(self._unreported())

    def _unreported(self) -> list[Attempt]:
        now = self._now()
        return [
            attempt
            for state in self.states.values()
            for attempt in unreported(state, self._reported, now, self._options)
        ]

    async def report_never_dialled(self, logged: Collection[CallId]) -> list[CallDialFailed]:
        """After ``rebuild``: report ``not_dialled`` each unreported attempt whose call is not in
        the call log (``logged``: the call ids of the call inputs' ``CallReceived``), on the
        requests topic, where the dialer reads it as any dial report (``recovery``)."""
        now = self._now()
        reports = [
            report
            for state in self.states.values()
            for report in never_dialled(state, self._reported, logged, now, self._options)
        ]
        for report in reports:
            value = self._codec.encode(report)
            await send_until_acknowledged(
                partial(self._send_and_wait, DIALER_REQUESTS.name, report.agent_id.encode(), value),
                self._send_backoff_s,
                f"CallDialFailed for {report.attempt_call_id} (never dialled)",
            )
            self._reported.add(report.attempt_call_id)
        return reports

    def _observe(self, fact: AgentVersionPublished | AgentArchived) -> None:
        state = self.state(fact.tenant_id)
        known = state.agents.get(fact.agent_id)
        if isinstance(fact, AgentVersionPublished) and known is not None and known.version > fact.version:
            return  # re-delivered older version
        observe_agent(state, fact)

    async def handle(self, value: bytes) -> Refusal | None:
        """Apply one routed record; why not, as a dead letter's reason and detail, when it cannot."""
        try:
            record = self._codec.decode(value)
        except DecodeError as err:
            return Refusal("undecodable", f"undecodable: {err}")
        if isinstance(record, AgentVersionPublished | AgentArchived):
            self._observe(record)
            return None
        if not isinstance(record, _INPUTS):
            return Refusal("undecodable", f"not a dialer input: {type(record).__name__}")
        now = self._now()
        ahead = record.occurred_at - now
        if ahead > MAX_CLOCK_SKEW:
            # An input's time is the tenant's clock in the decider (deterministic, replayable):
            # one stamped days ahead would dial others before their not_before, or expire them.
            detail = f"occurred_at is {ahead} ahead of this worker's clock (at most {MAX_CLOCK_SKEW})"
            return Refusal("rejected_by_handler", detail)
        if ahead > timedelta(0):
            # A producer's clock a little fast must not move the tenant's clock (which never goes
            # back) ahead of this worker's: windows would open early, and every dial decided
            # then would be refused as it went out (too_late_to_dial) and wait for the next one.
            record = dataclasses.replace(record, occurred_at=now)
        await self.apply(record)
        return None

    async def apply(self, input_: DialerInput) -> list[DialerEvent]:
        lock = self._locks.setdefault(input_.tenant_id, asyncio.Lock())
        async with lock:
            state = self.state(input_.tenant_id)
            cancels = follow_call(state, input_)  # before the step: a hang-up ends the attempt
            events = step(state, input_, self._options)
            for event, durable in zip(events, _writes_to_wait_for(events), strict=True):
                send = self._send_and_wait if durable else self._send
                value = self._codec.encode(event)
                # The state has moved already: through an outage, the events must follow it
                # (ADR 12), or memory would hold a dial the log never saw, and a slot for good.
                await send_until_acknowledged(
                    partial(send, DIALER_EVENTS.name, event.agent_id.encode(), value),
                    self._send_backoff_s,
                    f"dialer event {type(event).__name__} for {event.agent_id}",
                )
            for event in events:
                self._act(state, event)
            for cancel in cancels:
                self._spawn(self._dialling.cancel(cancel.twilio_call_sid))
        return events

    async def tick(self, now: datetime | None = None) -> None:
        """Let time pass for every tenant with work waiting or attempts live (a lost one is reaped)."""
        now = now or self._now()
        for tenant_id, state in list(self.states.items()):
            if state.queue or state.live or state.cancel_when_known:
                await self.apply(Tick(tenant_id=tenant_id, now=now))
            else:
                advance(state, now)  # nothing to decide, but a late input must not go back in time

    def _act(self, state: DialerState, event: DialerEvent) -> None:
        if isinstance(event, CallAttemptStarted):
            agent, request = state.agents[event.agent_id], state.requests.get(event.call_id)
            self._spawn(self._dialling.dial(event, agent, request))
        elif isinstance(event, MachineAnswerHandled) and event.action == "hang_up" and event.twilio_call_sid:
            self._spawn(self._dialling.hang_up(event.twilio_call_sid))
        elif isinstance(event, MachineAnswerHandled) and event.action == "leave_message":
            self._spawn(self._dialling.request_voicemail(event))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            # Only the broker refusing a report for the record itself gets here (outages are
            # waited out, dial errors reported): say so, the attempt's outcome is not in the log.
            log.error("dialer background work failed: %r", err, exc_info=err)

    async def drain(self) -> None:
        """Wait for dials in flight (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
