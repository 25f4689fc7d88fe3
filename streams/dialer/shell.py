"""The dialer's imperative shell: decode, step the tenant's state, publish events, dial.

Shared by the Faust app and tests. It holds one ``DialerState`` per tenant in memory; on
start the state is rebuilt by folding the dialer's own event log and the agent definitions
(``rebuild``), so a restarted worker carries on where the log says it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from infra.kafka import send_until_acknowledged
from schemas.agents import AgentArchived, AgentVersionPublished
from schemas.calls import CallEnded, CallFailed, CallReceived, TelephonyStatusChanged, VoicemailRequested
from schemas.catalog import CALL_INPUTS, DIALER_EVENTS, DIALER_REQUESTS
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
from schemas.envelope import derive_event_id
from schemas.ids import CallId, CorrelationId, EventId, TenantId
from streams.dialer.decider import DialerInput, DialerOptions, Tick, step, too_late_to_dial
from streams.dialer.state import AgentInfo, DialerState, Request, advance, evolve, observe_agent
from streams.telephony.port import DialError, DialRequest, Telephony

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of the dialer's own clock an input's occurred_at may be."""


class Refusal(NamedTuple):
    """Why the dialer will not apply a record: a dead letter's reason and its detail."""

    reason: str
    detail: str


SEND_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0)
"""Between attempts to publish a dialer event while the broker is away (then every 5 s)."""

HANG_UP_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 20.0)
"""Between attempts to hang up on a machine after a retryable error; then it is left to its time limit."""

Send = Callable[[str, bytes, bytes], Awaitable[None]]
"""Publish (topic, key, value); ``send`` keeps order, ``send_and_wait`` also waits for the broker."""

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
)
ROUTED = (*_INPUTS, AgentVersionPublished, AgentArchived)
"""Record types the dialer consumes (re-keyed by tenant before it sees them)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
    """Per-tenant states, the step loop and the telephony side effects."""

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
        now: Callable[[], datetime] = _utc_now,
        hang_up_backoff_s: Sequence[float] = HANG_UP_BACKOFF_S,
    ) -> None:
        self._now = now
        self._hang_up_backoff_s = hang_up_backoff_s
        self._codec = codec
        self._send_backoff_s = send_backoff_s
        self._options = options
        self._telephony = telephony
        self._send = send
        self._send_and_wait = send_and_wait
        self._gate = asyncio.Semaphore(max_in_flight)
        self._locks: dict[TenantId, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.states: dict[TenantId, DialerState] = {}

    def state(self, tenant_id: TenantId) -> DialerState:
        found = self.states.get(tenant_id)
        if found is None:
            found = self.states[tenant_id] = DialerState(tenant_id=tenant_id)
        return found

    def rebuild(self, records: Iterable[object], now: datetime | None = None) -> None:
        """Fold agent definitions and the dialer's own events, in log order, into the states.

        ``now`` (when the worker starts) moves every clock on: the log knows only when events
        were decided, and an input read after a restart must not be decided earlier than now.
        """
        for record in records:
            if isinstance(record, AgentVersionPublished | AgentArchived):
                self._observe(record)
            elif isinstance(record, DialerEvent):
                state = self.state(record.tenant_id)
                if record.seq <= state.seqs.get(record.agent_id, 0):
                    continue  # a copy re-sent after a lost ack: each agent's seq only grows
                evolve(state, record)
        if now is not None:
            for state in self.states.values():
                advance(state, now)

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
        ahead = record.occurred_at - self._now()
        if ahead > MAX_CLOCK_SKEW:
            # An input's time is the tenant's clock in the decider (deterministic, replayable):
            # one stamped days ahead would dial others before their not_before, or expire them.
            detail = f"occurred_at is {ahead} ahead of this worker's clock (at most {MAX_CLOCK_SKEW})"
            return Refusal("rejected_by_handler", detail)
        await self.apply(record)
        return None

    async def apply(self, input_: DialerInput) -> list[DialerEvent]:
        lock = self._locks.setdefault(input_.tenant_id, asyncio.Lock())
        async with lock:
            state = self.state(input_.tenant_id)
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
        return events

    async def tick(self, now: datetime | None = None) -> None:
        """Let time pass for every tenant with work waiting or attempts live (a lost one is reaped)."""
        now = now or self._now()
        for tenant_id, state in list(self.states.items()):
            if state.queue or state.live:
                await self.apply(Tick(tenant_id=tenant_id, now=now))
            else:
                advance(state, now)  # nothing to decide, but a late input must not go back in time

    def _act(self, state: DialerState, event: DialerEvent) -> None:
        if isinstance(event, CallAttemptStarted):
            self._spawn(self._dial(state, event))
        elif isinstance(event, MachineAnswerHandled) and event.action == "hang_up" and event.twilio_call_sid:
            self._spawn(self._hang_up(event.twilio_call_sid))
        elif isinstance(event, MachineAnswerHandled) and event.action == "leave_message":
            self._spawn(self._request_voicemail(event))

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

    async def _dial(self, state: DialerState, started: CallAttemptStarted) -> None:
        agent = state.agents[started.agent_id]
        request = state.requests.get(started.call_id)
        async with self._gate:
            refused = await self._log_call(started, agent, request)
            outcome = refused if refused is not None else await self._place(started, agent, request)
        if isinstance(outcome, DialError):
            await self._report_failure(started, outcome)
            return
        await self._report(
            CallDialled(
                **self._env(started, "dialled"),
                call_id=started.call_id,
                attempt_call_id=started.attempt_call_id,
                attempt=started.attempt,
                twilio_call_sid=outcome,
            )
        )

    async def _log_call(
        self, started: CallAttemptStarted, agent: AgentInfo, request: Request | None
    ) -> DialError | None:
        """Put the attempt's CallReceived in the call log, waiting out an outage (ADR 12)."""

        def received() -> CallReceived:
            # When the call is placed, not when it was decided: a request read late (after an
            # outage) must not reach the calls worker already past its setup timeout.
            return CallReceived(
                tenant_id=started.tenant_id,
                call_id=started.attempt_call_id,
                seq=0,
                event_id=derive_event_id(started.attempt_call_id, 0, "dialer.call_received"),
                occurred_at=self._now(),
                correlation_id=CorrelationId(started.call_id),
                direction="outbound",
                from_number=started.from_number,
                to_number=started.to_number,
                agent_id=started.agent_id,
                agent_version=started.agent_version,
                variables=dict(request.variables) if request else {},
                max_duration_s=agent.config.max_duration_s,
                silence_timeout_s=agent.config.silence_timeout_s,
            )

        key = started.attempt_call_id.encode()

        async def deliver() -> None:
            await self._send_and_wait(CALL_INPUTS.name, key, self._codec.encode(received()))

        what = f"CallReceived {started.attempt_call_id}"
        try:
            await send_until_acknowledged(deliver, self._send_backoff_s, what)
        except Exception as err:  # refused for the record itself (too large): this call cannot be
            log.exception("%s was refused", what)
            return DialError(f"the call log refused it: {err!r}", code=None, status=None, retryable=False)
        return None

    async def _place(
        self, started: CallAttemptStarted, agent: AgentInfo, request: Request | None
    ) -> str | DialError:
        """The call's sid, or why it was not placed."""
        # The decision may be old by now (an outage held its events or CallReceived): the
        # window and the deadline are checked again at the moment the call would go out.
        late = too_late_to_dial(agent, request, self._now())
        if late is not None:
            return DialError(late, code=None, status=None, retryable=True)
        try:
            return await self._telephony.place(
                DialRequest(
                    call_id=started.attempt_call_id,
                    tenant_id=started.tenant_id,
                    agent_id=started.agent_id,
                    agent_version=started.agent_version,
                    to_number=started.to_number,
                    from_number=started.from_number,
                    time_limit_s=agent.config.max_duration_s,
                    record=agent.config.record_calls,
                )
            )
        except DialError as err:
            return err
        except Exception as err:  # a bug in an adapter must still free the slot
            log.exception("dialling %s failed", started.attempt_call_id)
            return DialError(repr(err), code=None, status=None, retryable=False)

    async def _report_failure(self, started: CallAttemptStarted, err: DialError) -> None:
        await self._report(
            CallDialFailed(
                **self._env(started, "dial_failed"),
                call_id=started.call_id,
                attempt_call_id=started.attempt_call_id,
                attempt=started.attempt,
                error_code=err.code,
                http_status=err.status,
                message=err.message[:500],
                retryable=err.retryable,
            )
        )
        # End the attempt's call in the call log too; the dialer ignores the echo.
        failed = TelephonyStatusChanged(
            tenant_id=started.tenant_id,
            call_id=started.attempt_call_id,
            seq=0,
            event_id=derive_event_id(started.attempt_call_id, 0, "dialer.dial_failed"),
            occurred_at=self._now(),
            correlation_id=CorrelationId(started.call_id),
            twilio_call_sid="",
            status="failed",
        )
        await self._deliver(CALL_INPUTS.name, started.attempt_call_id, failed)

    def _env(self, started: CallAttemptStarted, kind: str) -> dict[str, Any]:
        return {
            "tenant_id": started.tenant_id,
            "agent_id": started.agent_id,
            "seq": 0,
            "event_id": EventId(derive_event_id(started.attempt_call_id, started.attempt, f"dialer.{kind}")),
            "occurred_at": self._now(),
            "correlation_id": CorrelationId(CallId(started.call_id)),
        }

    async def _report(self, record: CallDialled | CallDialFailed) -> None:
        # Lost, the report would leave the attempt live until reaped and its request undone.
        await self._deliver(DIALER_REQUESTS.name, record.agent_id, record)

    async def _deliver(self, topic: str, key: str, record: Any) -> None:
        """Send one record and wait for its ack, sending it again while the broker is away (ADR 12)."""
        value = self._codec.encode(record)
        what = f"{type(record).__name__} for {key}"
        await send_until_acknowledged(
            partial(self._send_and_wait, topic, key.encode(), value), self._send_backoff_s, what
        )

    async def _request_voicemail(self, handled: MachineAnswerHandled) -> None:
        """Tell the call (and so its session worker) to leave the message; the id is derived,
        so a re-decided MachineAnswerHandled asks once."""
        if not handled.voicemail_message:
            return
        request = VoicemailRequested(
            tenant_id=handled.tenant_id,
            call_id=handled.attempt_call_id,
            seq=0,
            event_id=derive_event_id(handled.attempt_call_id, 0, "dialer.voicemail_requested"),
            occurred_at=handled.occurred_at,
            correlation_id=handled.correlation_id,
            message=handled.voicemail_message,
        )
        try:
            await self._deliver(CALL_INPUTS.name, handled.attempt_call_id, request)
        except Exception:  # refused for the record itself: the call still ends by its own timers
            log.exception("asking call %s for a voicemail failed", handled.attempt_call_id)

    async def _hang_up(self, call_sid: str) -> None:
        """Hang up on a machine, trying a retryable failure again a bounded number of times."""
        # Bounded: the call ends by its own time limit anyway; retrying only shortens it.
        for wait in (*self._hang_up_backoff_s, None):
            try:
                await self._telephony.hang_up(call_sid)
                return
            except DialError as err:
                if not err.retryable or wait is None:
                    log.error("hanging up %s failed, left to its time limit: %s", call_sid, err)
                    return
                log.warning("hanging up %s failed (%s); trying again in %.1f s", call_sid, err, wait)
            except Exception:  # a bug in an adapter must not take the dialer down
                log.exception("hanging up %s failed, left to its time limit", call_sid)
                return
            await asyncio.sleep(wait)

    async def drain(self) -> None:
        """Wait for dials in flight (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
