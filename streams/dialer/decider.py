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
- A hang-up requested on a call not answered yet (an operator's ``EndCall``) has the shell
  cancel it at Twilio (``streams.dialer.cancellation``); it ends ``canceled``, not retried.
- "Now" never goes back: an input read late is decided at the state's clock. A dial held up
  after its decision (an outage) is checked again by the shell as it would go out
  (``too_late_to_dial``); one too late is reported as a retryable dial failure, so it costs
  an attempt (the schema has no outcome for "not dialled").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeAlias, assert_never

from schemas.calls import CallEnded, CallFailed, HangUpRequested, TelephonyStatusChanged
from schemas.dialer import (
    CallAttemptRecorded,
    CallAttemptStarted,
    CallDialFailed,
    CallDialled,
    CallRequestCompleted,
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
    MachineAnswerHandled,
    PauseCampaign,
    PlaceCall,
    ResumeCampaign,
)
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CampaignId, CorrelationId, TenantId
from streams.dialer.policy import RETRYABLE_OUTCOMES, CallingWindow, RetryPolicy, is_e164, parse_window
from streams.dialer.state import AgentInfo, Attempt, DialerState, Request, advance, evolve

_PLACE_CALL = "voice.dialer.v1.PlaceCall"
_MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax")
_UNKNOWN_AGENT_MAX_DURATION_S = 4 * 60 * 60  # the longest any agent may allow (agent_rules)
_UNANSWERED_ENDS = {"busy": "busy", "no_answer": "no_answer", "canceled": "canceled", "failed": "failed"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """Time passed; due retries, opening windows and deadlines act on it."""

    tenant_id: TenantId
    now: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DialerOptions:
    """Limits that are not (yet) part of an agent's definition."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    tenant_max_concurrent_calls: int = 50
    do_not_call: frozenset[str] = frozenset()
    default_from_number: str = "+15005550006"
    unknown_agent_grace_s: float = 10.0
    """Agent definitions reach the dialer on another topic; a request may overtake its agent."""
    lost_attempt_slack_s: float = 900.0
    """An attempt with no outcome this long after its agent's max call duration is lost."""


CampaignCommand: TypeAlias = CreateCampaign | PauseCampaign | ResumeCampaign | CancelCampaign
CallFact: TypeAlias = TelephonyStatusChanged | CallEnded | CallFailed | HangUpRequested
DialerInput: TypeAlias = (
    PlaceCall | CancelPlaceCall | CallDialled | CallDialFailed | CampaignCommand | CallFact | Tick
)


def attempt_call_id(call_id: CallId, attempt: int) -> CallId:
    """The call id of the ``attempt``-th attempt of request ``call_id``."""
    return call_id if attempt == 1 else CallId(f"{call_id}-a{attempt}")


class _Emitter:
    """Numbers events per agent from the state's counters, without touching the state."""

    def __init__(self, state: DialerState, now: datetime) -> None:
        self._state = state
        self._now = now
        self._seqs: dict[AgentId, int] = {}
        self.events: list[DialerEvent] = []

    def env(self, agent_id: AgentId, correlation: str) -> dict[str, Any]:
        seq = self._seqs.get(agent_id, self._state.seqs.get(agent_id, 0)) + 1
        self._seqs[agent_id] = seq
        return {
            "tenant_id": self._state.tenant_id,
            "agent_id": agent_id,
            "seq": seq,
            "event_id": derive_event_id(f"dialer:{agent_id}", seq),
            "occurred_at": self._now,
            "correlation_id": CorrelationId(correlation),
        }

    def add(self, event: DialerEvent) -> None:
        self.events.append(event)


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
    out = _Emitter(state, now)
    match input_:
        case PlaceCall():
            _place(state, input_, options, out)
        case CancelPlaceCall():
            _cancel(state, input_, out)
        case CallDialFailed():
            _dial_failed(state, input_, options, out)
        case CreateCampaign() | PauseCampaign() | ResumeCampaign() | CancelCampaign():
            _campaign(state, input_, out)
        case TelephonyStatusChanged():
            _status(state, input_, out)
        case CallEnded() | CallFailed():
            _call_over(state, input_, options, out)
        case Tick():
            _reap_lost(state, now, options, out)
        case CallDialled() | HangUpRequested():
            # A dial went out, or its call is to end: the call log says how it goes. Cancelling
            # a call not answered yet acts on nothing the dialer records (cancellation).
            pass
        case _:
            assert_never(input_)
    return out.events


def _rejected(out: _Emitter, command: PlaceCall, reason: str, detail: str | None = None) -> None:
    out.add(
        DialerRequestRejected(
            **out.env(command.agent_id, command.call_id),
            command_type=_PLACE_CALL,
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


def _place(state: DialerState, command: PlaceCall, options: DialerOptions, out: _Emitter) -> None:
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


def _completed(out: _Emitter, request: Request, outcome: str, answered: bool) -> None:
    out.add(
        CallRequestCompleted(
            **out.env(request.agent_id, request.call_id),
            call_id=request.call_id,
            attempts=request.attempts,
            outcome=outcome,
            answered=answered,
            campaign_id=request.campaign_id,
        )
    )


def _cancel(state: DialerState, command: CancelPlaceCall, out: _Emitter) -> None:
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
    _completed(out, request, "cancelled", False)


def _campaign(state: DialerState, command: CampaignCommand, out: _Emitter) -> None:
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


def _recorded(out: _Emitter, attempt: Attempt, request: Request | None, outcome: str, **extra: Any) -> None:
    out.add(
        CallAttemptRecorded(
            **out.env(attempt.agent_id, attempt.call_id),
            call_id=attempt.call_id,
            attempt_call_id=attempt.attempt_call_id,
            attempt=attempt.attempt,
            outcome=outcome,
            campaign_id=request.campaign_id if request else None,
            **extra,
        )
    )


def _reap_lost(state: DialerState, now: datetime, options: DialerOptions, out: _Emitter) -> None:
    # The calls worker ends every call by its max duration, so an attempt still live well after
    # it will never hear its outcome (a call the calls worker never took, say, because its id
    # was reused): free its slot rather than hold it until a restart.
    for attempt in list(state.live.values()):
        agent = state.agents.get(attempt.agent_id)
        max_duration_s = agent.config.max_duration_s if agent else _UNKNOWN_AGENT_MAX_DURATION_S
        lost_at = attempt.started_at + timedelta(seconds=max_duration_s + options.lost_attempt_slack_s)
        if now < lost_at:
            continue
        request = state.requests.get(attempt.call_id)
        detail = f"no outcome by {lost_at.isoformat()} (max duration plus {options.lost_attempt_slack_s:g} s)"
        _recorded(out, attempt, request, "lost", detail=detail)
        if request is not None:
            _completed(out, request, "completed" if attempt.answered else "failed", attempt.answered)


def _status(state: DialerState, fact: TelephonyStatusChanged, out: _Emitter) -> None:
    attempt = state.live.get(fact.call_id)
    if attempt is None:
        return
    request = state.requests.get(attempt.call_id)
    if fact.answered_by in _MACHINE and not attempt.machine:
        agent = state.agents.get(attempt.agent_id)
        policy = agent.config.answering_machine_policy if agent else "hang_up"
        message = agent.config.voicemail_message if agent else None
        if policy != "ignore":
            action = "leave_message" if policy == "leave_message" and message else "hang_up"
            out.add(
                MachineAnswerHandled(
                    **out.env(attempt.agent_id, attempt.call_id),
                    call_id=attempt.call_id,
                    attempt_call_id=attempt.attempt_call_id,
                    twilio_call_sid=fact.twilio_call_sid or None,
                    answered_by=fact.answered_by or "machine_start",
                    action=action,
                    voicemail_message=message if action == "leave_message" else None,
                )
            )
            if not attempt.answered:
                _recorded(out, attempt, request, "machine", twilio_call_sid=fact.twilio_call_sid or None)
            return
    answered = fact.status == "in-progress" or fact.answered_by is not None
    if answered and not attempt.answered:
        _recorded(out, attempt, request, "answered", twilio_call_sid=fact.twilio_call_sid or None)


def _call_over(
    state: DialerState, fact: CallEnded | CallFailed, options: DialerOptions, out: _Emitter
) -> None:
    attempt = state.live.get(fact.call_id)
    if attempt is None:
        return
    request = state.requests.get(attempt.call_id)
    reason = fact.reason if isinstance(fact, CallEnded) else "failed"
    if not attempt.answered and attempt.hang_up_requested:
        reason = "canceled"  # ended as asked before anyone answered (even if Twilio's cancel failed)
    if attempt.answered or reason not in _UNANSWERED_ENDS:
        if request is not None:
            _completed(out, request, "machine" if attempt.machine else "completed", True)
        return
    outcome = _UNANSWERED_ENDS[reason]
    detail = fact.detail if isinstance(fact, CallFailed) else None
    stopped = _campaign_stopped(state, request)
    _unanswered(out, attempt, request, outcome, options, fact.occurred_at, detail=detail, stopped=stopped)


def _dial_failed(state: DialerState, fact: CallDialFailed, options: DialerOptions, out: _Emitter) -> None:
    attempt = state.live.get(fact.attempt_call_id)
    if attempt is None or attempt.answered:
        return
    request = state.requests.get(attempt.call_id)
    _unanswered(
        out,
        attempt,
        request,
        "error",
        options,
        fact.occurred_at,
        retryable=fact.retryable,
        stopped=_campaign_stopped(state, request),
        error_code=fact.error_code,
        detail=fact.message,
    )


def _unanswered(
    out: _Emitter,
    attempt: Attempt,
    request: Request | None,
    outcome: str,
    options: DialerOptions,
    now: datetime,
    *,
    retryable: bool = True,
    stopped: bool = False,
    **extra: Any,
) -> None:
    retry_at = None
    if retryable and outcome in RETRYABLE_OUTCOMES and request is not None and not stopped:
        retry_at = options.retry.retry_at(attempt.attempt, now)
        if retry_at is not None and request.deadline is not None and retry_at > request.deadline:
            retry_at = None
    _recorded(out, attempt, request, outcome, retry_at=retry_at, **extra)
    if retry_at is None and request is not None:
        _completed(out, request, "failed", False)


def _campaign_stopped(state: DialerState, request: Request | None) -> bool:
    campaign = state.campaigns.get(request.campaign_id) if request and request.campaign_id else None
    return campaign is not None and campaign.cancelled


def schedule(
    state: DialerState, now: datetime, options: DialerOptions, *, full_scan: bool = True
) -> list[DialerEvent]:
    """Start every queued request that may be dialled now, best first, within every limit.

    Deadlines and unknown agents are settled on full scans (ticks); other inputs stop as soon
    as no agent has a free slot, so a long queue behind full agents costs nothing per input.
    """
    free = options.tenant_max_concurrent_calls - len(state.live)
    if free <= 0 or not state.queue:
        return []
    live = Counter(a.agent_id for a in state.live.values())
    open_agents = {
        agent_id
        for agent_id, info in state.agents.items()
        if not info.archived and live[agent_id] < info.config.max_concurrent_calls
    }
    if not full_scan and not open_agents:
        return []
    out = _Emitter(state, now)
    grace = timedelta(seconds=options.unknown_agent_grace_s)
    for _, _, call_id in list(state.queue):
        request = state.requests[call_id]
        if not full_scan and request.agent_id not in open_agents:
            continue
        verdict = _readiness(state, request, now, live, grace)
        if verdict == "expired":
            _completed(out, request, "deadline_passed", False)
        elif verdict == "unknown":
            _withdrawn(out, request, "unknown_agent", f"no published agent {request.agent_id}")
        elif verdict == "foreign_number":
            _withdrawn(out, request, "invalid_number", _foreign_number(state, request))
        elif verdict == "gone":
            _completed(out, request, "failed", False)
        elif verdict == "ready":
            _start(state, out, request, options)
            live[request.agent_id] += 1
            free -= 1
            if live[request.agent_id] >= state.agents[request.agent_id].config.max_concurrent_calls:
                open_agents.discard(request.agent_id)
            if free == 0 or (not full_scan and not open_agents):
                break
    return out.events


def _readiness(
    state: DialerState, request: Request, now: datetime, live: Counter[AgentId], grace: timedelta
) -> str:
    agent = state.agents.get(request.agent_id)
    if agent is None:
        return "unknown" if now - request.queued_at >= grace else "wait"
    if agent.archived:
        return "gone"
    if request.from_number is not None and request.from_number not in agent.config.phone_numbers:
        # Checked at PlaceCall only when the agent was known then, and a later version may
        # drop the number: a caller id is dialled only while it is the agent's own.
        return "foreign_number"
    if request.deadline is not None and now >= request.deadline:
        return "expired"
    campaign = state.campaigns.get(request.campaign_id) if request.campaign_id else None
    if campaign is not None and campaign.paused:
        return "wait"
    if (request.not_before and now < request.not_before) or (request.next_at and now < request.next_at):
        return "wait"
    if live[request.agent_id] >= agent.config.max_concurrent_calls:
        return "wait"
    window = _window(agent.config.calling_window, agent.config.timezone)
    if window is not None and not window.contains(now):
        return "wait"
    return "ready"


def _foreign_number(state: DialerState, request: Request) -> str:
    version = state.agents[request.agent_id].version
    return f"{request.from_number} is not one of agent {request.agent_id}'s numbers (version {version})"


def _withdrawn(out: _Emitter, request: Request, reason: str, detail: str) -> None:
    """Refuse a request already accepted, as its PlaceCall would have been refused."""
    out.add(
        DialerRequestRejected(
            **out.env(request.agent_id, request.call_id),
            command_type=_PLACE_CALL,
            call_id=request.call_id,
            idempotency_key=request.idempotency_key,
            campaign_id=request.campaign_id,
            reason=reason,
            detail=detail,
        )
    )


@lru_cache(maxsize=256)
def _window(text: str | None, timezone: str) -> CallingWindow | None:
    try:
        return parse_window(text, timezone)
    except ValueError:
        return None  # a bad window was the agent author's to catch; dialling is not blocked


def too_late_to_dial(agent: AgentInfo, request: Request | None, now: datetime) -> str | None:
    """Why an attempt decided earlier must not be dialled at ``now``, or None when it may."""
    if request is not None and request.deadline is not None and now >= request.deadline:
        return f"not dialled: the deadline {request.deadline.isoformat()} passed before the dial"
    window = _window(agent.config.calling_window, agent.config.timezone)
    if window is not None and not window.contains(now):
        return (
            f"not dialled: outside the calling window {agent.config.calling_window} ({agent.config.timezone})"
        )
    return None


def _start(state: DialerState, out: _Emitter, request: Request, options: DialerOptions) -> None:
    agent = state.agents[request.agent_id]
    attempt = request.attempts + 1
    numbers = agent.config.phone_numbers
    out.add(
        CallAttemptStarted(
            **out.env(request.agent_id, request.call_id),
            call_id=request.call_id,
            attempt_call_id=attempt_call_id(request.call_id, attempt),
            attempt=attempt,
            to_number=request.to_number,
            from_number=request.from_number or (numbers[0] if numbers else options.default_from_number),
            agent_version=agent.version,
            campaign_id=request.campaign_id,
        )
    )
