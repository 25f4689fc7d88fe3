"""The dialer decider: what each request, report, call event or tick makes the dialer do.

``decide(state, input_, options)`` answers the input; ``schedule(state, now, options)`` starts
the attempts that may start now. ``step`` runs both and folds the events into the state; it
is what the shell and the tests call. Nothing here reads a clock or does I/O: time comes from
the input (its ``occurred_at``, or ``Tick.now``), never earlier than the latest time the state
has seen (``DialerState.clock``), so replaying the same inputs from the same state emits
byte-identical events.

Choices recorded here:

- Slots are held from ``CallAttemptStarted`` until the attempt's call ends in the call log
  (``CallEnded``/``CallFailed``, relayed to the dialer) or the provider refuses the dial.
- One PlaceCall is one request; each attempt is its own call (``call_id`` for the first,
  ``<call_id>-a<n>`` after), because a call's log ends with its first ``CallEnded``.
- Busy, no-answer, failed calls and retryable provider errors are retried with exponential
  back-off up to ``RetryPolicy.max_attempts``; every attempt gets a ``CallAttemptRecorded``.
- A machine answer follows the agent's policy; ``leave_message`` without a message hangs up.
- A provider error is retried only when it says so (``CallDialFailed.retryable``): the adapter
  reports a create that went out unanswered (a timeout) as not retryable, since Twilio may
  have placed the call and a retry could ring the person twice.
- An operator's hang-up (``EndCall``) of a call not answered yet is noted in the log
  (``CallAttemptHangUpNoted``, so a restart keeps it) and has the shell cancel it at Twilio
  (``streams.dialer.cancellation``); the attempt holds its slot until the call ends, and ends
  ``canceled`` (the call's ``ended_by``, or the note), not retried; so does a request waiting to retry
  the attempt whose call the operator ended, and a retry already dialling when the hang-up of
  the attempt before it is read (the retry is cancelled in its stead).
- "Now" never goes back: an input read late is decided at the state's clock. A dial held up
  after its decision (an outage) is checked again by the shell as it would go out
  (``too_late_to_dial``); one too late is reported as a dial failure ``not_dialled``, recorded
  as an attempt ``not_dialled`` that rang nobody and so does not count against the retry
  policy's maximum (nor its back-off): the request waits for its window to open again, or ends
  ``deadline_passed``. It keeps its number (its call id is spent in the call log).
- So is an attempt a stopped dialer left started but never dialled: after a restart, one with
  no dial report whose call is not in the call log either (``streams.dialer.recovery``); one
  whose call is there may have reached Twilio, and the call log settles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, assert_never

from schemas.calls import CallEnded, CallFailed, HangUpRequested, TelephonyStatusChanged
from schemas.dialer import (
    CallDialFailed,
    CallDialled,
    CallRequestQueued,
    CampaignCancelled,
    CampaignCreated,
    CampaignPaused,
    CampaignResumed,
    CancelCampaign,
    CancelPlaceCall,
    CreateCampaign,
    DialerEvent,
    DialerRequestRejected,
    PauseCampaign,
    PlaceCall,
    ResumeCampaign,
)
from schemas.ids import CampaignId, TenantId
from streams.dialer.emitter import PLACE_CALL, Emitter, attempt_call_id, completed
from streams.dialer.options import DialerOptions
from streams.dialer.outcomes import call_over, dial_failed, hang_up_asked, on_status, reap_lost
from streams.dialer.policy import is_e164
from streams.dialer.scheduling import schedule, too_late_to_dial
from streams.dialer.state import DialerState, advance, evolve

__all__ = [
    "DialerInput",
    "DialerOptions",
    "Tick",
    "attempt_call_id",
    "decide",
    "schedule",
    "step",
    "too_late_to_dial",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """Time passed; due retries, opening windows and deadlines act on it."""

    tenant_id: TenantId
    now: datetime


CampaignCommand: TypeAlias = CreateCampaign | PauseCampaign | ResumeCampaign | CancelCampaign
CallFact: TypeAlias = TelephonyStatusChanged | CallEnded | CallFailed | HangUpRequested
DialerInput: TypeAlias = (
    PlaceCall | CancelPlaceCall | CallDialled | CallDialFailed | CampaignCommand | CallFact | Tick
)


def step(state: DialerState, input_: DialerInput, options: DialerOptions) -> list[DialerEvent]:
    """Decide, fold, schedule, fold: the events input_ caused, with ``state`` brought up to date."""
    events = decide(state, input_, options)
    for event in events:
        evolve(state, event)
    now = advance(state, _now(state, input_))
    started = schedule(state, now, options, full_scan=isinstance(input_, Tick))
    for event in started:
        evolve(state, event)
    return events + started


def _now(state: DialerState, input_: DialerInput) -> datetime:
    """When input_ is decided: its own time, unless the state has already seen a later one.

    An input read late (a backlog, an outage) carries an old ``occurred_at``; deciding at it
    would dial after a window closed or a deadline passed, as of a moment already gone.
    """
    stamped = input_.now if isinstance(input_, Tick) else input_.occurred_at
    return stamped if state.clock is None or stamped > state.clock else state.clock


def decide(state: DialerState, input_: DialerInput, options: DialerOptions) -> list[DialerEvent]:
    """The events input_ causes, before any new attempt is scheduled."""
    if input_.tenant_id != state.tenant_id:
        return []
    now = _now(state, input_)
    out = Emitter(state, now)
    match input_:
        case PlaceCall():
            _place(state, input_, options, out)
        case CancelPlaceCall():
            _cancel(state, input_, out)
        case CallDialFailed():
            dial_failed(state, input_, options, out)
        case CreateCampaign() | PauseCampaign() | ResumeCampaign() | CancelCampaign():
            _campaign(state, input_, out)
        case TelephonyStatusChanged():
            on_status(state, input_, out)
        case CallEnded() | CallFailed():
            call_over(state, input_, options, out)
        case Tick():
            reap_lost(state, now, options, out)
        case HangUpRequested():
            hang_up_asked(state, input_, options, out)
        case CallDialled():
            pass  # a dial went out: the call log says how it goes
        case _:
            assert_never(input_)
    return out.events


def _rejected(out: Emitter, command: PlaceCall, reason: str, detail: str | None = None) -> None:
    out.add(
        DialerRequestRejected(
            **out.env(command.agent_id, command.call_id),
            command_type=PLACE_CALL,
            call_id=command.call_id,
            idempotency_key=command.idempotency_key,
            campaign_id=command.campaign_id,
            reason=reason,
            detail=detail,
        )
    )


def _refusal(state: DialerState, command: PlaceCall, options: DialerOptions) -> tuple[str, str] | None:
    if (command.agent_id, command.idempotency_key) in state.keys or command.call_id in state.requests:
        return "duplicate", f"idempotency key {command.idempotency_key!r} was already used"
    for number in (command.to_number, command.from_number):
        if number is not None and not is_e164(number):
            return "invalid_number", f"{number!r} is not an E.164 number"
    if command.to_number in options.do_not_call:
        return "do_not_call", f"{command.to_number} is on the do-not-call list"
    agent = state.agents.get(command.agent_id)
    if agent is not None and agent.archived:
        return "archived_agent", f"agent {command.agent_id} is archived"
    if (
        agent is not None
        and command.from_number is not None
        and command.from_number not in agent.config.phone_numbers
    ):
        # Caller id is the agent's own number: any other (another tenant's agent's) is refused.
        return "invalid_number", f"{command.from_number} is not one of agent {command.agent_id}'s numbers"
    campaign = state.campaigns.get(command.campaign_id) if command.campaign_id else None
    if campaign is not None and campaign.cancelled:
        return "campaign_cancelled", f"campaign {command.campaign_id} was cancelled"
    if command.deadline is not None and command.deadline <= command.occurred_at:
        return "deadline_passed", f"deadline {command.deadline.isoformat()} has passed"
    return None


def _place(state: DialerState, command: PlaceCall, options: DialerOptions, out: Emitter) -> None:
    refusal = _refusal(state, command, options)
    if refusal is not None:
        _rejected(out, command, *refusal)
        return
    out.add(
        CallRequestQueued(
            **out.env(command.agent_id, command.call_id),
            call_id=command.call_id,
            idempotency_key=command.idempotency_key,
            to_number=command.to_number,
            from_number=command.from_number,
            variables=dict(command.variables),
            priority=command.priority,
            not_before=command.not_before,
            deadline=command.deadline,
            campaign_id=command.campaign_id,
        )
    )


def _cancel(state: DialerState, command: CancelPlaceCall, out: Emitter) -> None:
    call_id = command.call_id
    if call_id is None and command.idempotency_key is not None:
        call_id = state.keys.get((command.agent_id, command.idempotency_key))
    request = state.requests.get(call_id) if call_id else None
    if request is None or request.dialling or request.agent_id != command.agent_id:
        out.add(
            DialerRequestRejected(
                **out.env(command.agent_id, command.correlation_id),
                command_type="voice.dialer.v1.CancelPlaceCall",
                call_id=call_id,
                idempotency_key=command.idempotency_key,
                reason="not_cancellable",
                detail="no waiting request with that key" if request is None else "already dialling",
            )
        )
        return
    completed(out, request, "cancelled", False)


def _campaign(state: DialerState, command: CampaignCommand, out: Emitter) -> None:
    env = out.env(command.agent_id, command.campaign_id)
    found = state.campaigns.get(command.campaign_id)
    if isinstance(command, CreateCampaign):
        if found is not None:
            out.add(_campaign_refused(env, command, "duplicate"))
        else:
            out.add(
                CampaignCreated(
                    **env, campaign_id=command.campaign_id, name=command.name, total=command.total
                )
            )
        return
    if found is None or found.agent_id != command.agent_id:
        out.add(_campaign_refused(env, command, "unknown_campaign"))
        return
    match command:
        case PauseCampaign():
            out.add(CampaignPaused(**env, campaign_id=command.campaign_id))
        case ResumeCampaign():
            out.add(CampaignResumed(**env, campaign_id=command.campaign_id))
        case CancelCampaign():
            dropped = sum(
                1 for r in state.requests.values() if r.campaign_id == command.campaign_id and not r.dialling
            )
            out.add(CampaignCancelled(**env, campaign_id=command.campaign_id, dropped=dropped))
        case _:
            assert_never(command)


def _campaign_refused(env: dict[str, Any], command: CampaignCommand, reason: str) -> DialerRequestRejected:
    return DialerRequestRejected(
        **env,
        command_type=f"voice.dialer.v1.{type(command).__name__}",
        campaign_id=CampaignId(command.campaign_id),
        reason=reason,
    )
