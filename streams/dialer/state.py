"""The dialer's state for one tenant, and evolve: how each event changes it.

The state is a fold of the dialer's own event log (``voice.dialer.events.v1``) and the agent
definitions (``voice.agents.events.v1``), but for what the Twilio side notes from the dial
reports and status callbacks (an attempt's sid, a dial reported failed that Twilio may have
placed all the same: ``streams.dialer.cancellation``), which a restart folds again from the dial
reports (``DialerShell.rebuild``). ``evolve`` updates it in place and returns it: a tenant can
hold 100,000 queued numbers, and copying them on every event would make each step O(n).
``decide`` never mutates; the shell owns the only state object.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias, assert_never

from schemas.agents import AgentArchived, AgentConfig, AgentVersionPublished
from schemas.dialer import (
    CallAttemptHangUpNoted,
    CallAttemptRecorded,
    CallAttemptStarted,
    CallRequestCompleted,
    CallRequestQueued,
    CampaignCancelled,
    CampaignCreated,
    CampaignPaused,
    CampaignResumed,
    DialerEvent,
    DialerRequestRejected,
    MachineAnswerHandled,
)
from schemas.ids import AgentId, CallId, CampaignId, TenantId
from streams.dialer.policy import queue_key

AgentFact: TypeAlias = AgentVersionPublished | AgentArchived


@dataclass(slots=True, kw_only=True)
class AgentInfo:
    """What the dialer knows of an agent: its current version and whether it is archived."""

    version: int
    config: AgentConfig
    archived: bool = False


@dataclass(slots=True, kw_only=True)
class Request:
    """A PlaceCall the dialer accepted and has not finished."""

    call_id: CallId
    agent_id: AgentId
    idempotency_key: str
    to_number: str
    from_number: str | None
    variables: dict[str, str]
    priority: int
    not_before: datetime | None
    deadline: datetime | None
    campaign_id: CampaignId | None
    order: int
    queued_at: datetime
    attempts: int = 0
    """Attempts started (each its own call id), those not dialled included."""
    not_dialled: int = 0
    """Attempts the shell's last check refused before the dial: they do not count against the
    retry policy's maximum."""
    next_at: datetime | None = None
    dialling: bool = False
    answered: bool = False


@dataclass(slots=True, kw_only=True)
class Attempt:
    """An attempt holding a slot: dialled (or being dialled) and not yet finished."""

    call_id: CallId
    attempt_call_id: CallId
    agent_id: AgentId
    attempt: int
    started_at: datetime
    answered: bool = False
    machine: bool = False
    twilio_call_sid: str | None = None
    """From the dial report or a status callback, not from the log (``cancellation.note_call``)."""
    hang_up_requested: bool = False
    """The operator asked to end it, or the earlier attempt it retries, before the answer
    (``CallAttemptHangUpNoted``): a dial refused, or a call ended unanswered, after that is not
    retried."""


@dataclass(slots=True, kw_only=True)
class Campaign:
    """A campaign's switches and progress figures."""

    agent_id: AgentId
    name: str
    total: int
    paused: bool = False
    cancelled: bool = False
    queued: int = 0
    dialling: int = 0
    answered: int = 0
    failed: int = 0
    done: int = 0


@dataclass(slots=True, kw_only=True)
class DialerState:
    """One tenant: its agents, queue, live attempts, idempotency keys and campaigns."""

    tenant_id: TenantId
    agents: dict[AgentId, AgentInfo] = field(default_factory=dict)
    requests: dict[CallId, Request] = field(default_factory=dict)
    queue: list[tuple[int, int, CallId]] = field(default_factory=list)
    """Sorted (-priority, order, call_id) of requests waiting to be dialled."""
    live: dict[CallId, Attempt] = field(default_factory=dict)
    keys: dict[tuple[AgentId, str], CallId] = field(default_factory=dict)
    campaigns: dict[CampaignId, Campaign] = field(default_factory=dict)
    seqs: dict[AgentId, int] = field(default_factory=dict)
    order: int = 0
    clock: datetime | None = None
    """The latest time this state has seen (inputs, ticks, its own events): its "now" never goes back."""
    cancel_when_known: dict[CallId, datetime] = field(default_factory=dict)
    """Calls to cancel once their sid is known, by when they were noted: a hang-up before the
    sid (``CallAttemptHangUpNoted``, so a rebuild has it until the dial reports folded after the
    log bring the sid), a dial reported failed that Twilio may have placed all the same
    (``cancellation.note_call``, folded again from the dial reports on a rebuild)."""

    def live_for(self, agent_id: AgentId) -> int:
        return sum(1 for a in self.live.values() if a.agent_id == agent_id)


def observe_agent(state: DialerState, fact: AgentFact) -> DialerState:
    """Fold an agent definition event into the directory."""
    match fact:
        case AgentVersionPublished():
            info = state.agents.get(fact.agent_id)
            archived = info.archived if info else False
            state.agents[fact.agent_id] = AgentInfo(
                version=fact.version, config=fact.config, archived=archived
            )
        case AgentArchived():
            found = state.agents.get(fact.agent_id)
            if found is not None:
                found.archived = True
        case _:
            assert_never(fact)
    return state


def advance(state: DialerState, now: datetime) -> datetime:
    """Move the state's clock to ``now`` unless it is already later; the clock afterwards."""
    if state.clock is None or now > state.clock:
        state.clock = now
    return state.clock


def evolve(state: DialerState, event: DialerEvent) -> DialerState:
    """Apply one dialer event to ``state`` (in place) and return it."""
    state.seqs[event.agent_id] = max(state.seqs.get(event.agent_id, 0), event.seq)
    # Events carry the clock they were decided at, so a rebuild from the log restores it.
    advance(state, event.occurred_at)
    match event:
        case CallRequestQueued():
            _queued(state, event)
        case DialerRequestRejected():
            _rejected(state, event)
        case CallAttemptStarted():
            _started(state, event)
        case CallAttemptRecorded():
            _recorded(state, event)
        case CallAttemptHangUpNoted():
            _hang_up_noted(state, event)
        case CallRequestCompleted():
            _completed(state, event)
        case MachineAnswerHandled():
            attempt = state.live.get(event.attempt_call_id)
            if attempt is not None:
                attempt.machine = True
        case CampaignCreated():
            state.campaigns[event.campaign_id] = Campaign(
                agent_id=event.agent_id, name=event.name, total=event.total
            )
        case CampaignPaused() | CampaignResumed():
            found = state.campaigns.get(event.campaign_id)
            if found is not None:
                found.paused = isinstance(event, CampaignPaused)
        case CampaignCancelled():
            _campaign_cancelled(state, event)
        case _:
            assert_never(event)
    return state


def _count(state: DialerState, campaign_id: CampaignId | None, **deltas: int) -> None:
    found = state.campaigns.get(campaign_id) if campaign_id else None
    if found is not None:
        for name, delta in deltas.items():
            setattr(found, name, getattr(found, name) + delta)


def _enqueue(state: DialerState, request: Request) -> None:
    bisect.insort(state.queue, (*queue_key(request.priority, request.order), request.call_id))


def _dequeue(state: DialerState, request: Request) -> None:
    entry = (*queue_key(request.priority, request.order), request.call_id)
    index = bisect.bisect_left(state.queue, entry)
    if index < len(state.queue) and state.queue[index] == entry:
        del state.queue[index]


def _queued(state: DialerState, event: CallRequestQueued) -> None:
    state.order += 1
    request = Request(
        call_id=event.call_id,
        agent_id=event.agent_id,
        idempotency_key=event.idempotency_key,
        to_number=event.to_number,
        from_number=event.from_number,
        variables=dict(event.variables),
        priority=event.priority,
        not_before=event.not_before,
        deadline=event.deadline,
        campaign_id=event.campaign_id,
        order=state.order,
        queued_at=event.occurred_at,
    )
    state.requests[event.call_id] = request
    state.keys[(event.agent_id, event.idempotency_key)] = event.call_id
    _enqueue(state, request)
    _count(state, event.campaign_id, queued=1)


def _rejected(state: DialerState, event: DialerRequestRejected) -> None:
    if event.reason == "duplicate" or event.command_type != "voice.dialer.v1.PlaceCall":
        return
    if event.idempotency_key is not None and event.call_id:
        state.keys.setdefault((event.agent_id, event.idempotency_key), event.call_id)
    waiting = state.requests.pop(event.call_id, None) if event.call_id else None
    if waiting is not None:  # accepted, then refused (its agent unknown, its caller id not the agent's)
        _dequeue(state, waiting)
        retrying = waiting.attempts > 0
        _count(state, event.campaign_id, queued=0 if retrying else -1, dialling=-1 if retrying else 0)
    _count(state, event.campaign_id, done=1, failed=1)


def _started(state: DialerState, event: CallAttemptStarted) -> None:
    request = state.requests.get(event.call_id)
    if request is None:
        return
    _dequeue(state, request)
    request.attempts = event.attempt
    request.dialling = True
    state.live[event.attempt_call_id] = Attempt(
        call_id=event.call_id,
        attempt_call_id=event.attempt_call_id,
        agent_id=event.agent_id,
        attempt=event.attempt,
        started_at=event.occurred_at,
    )
    if event.attempt == 1:
        _count(state, event.campaign_id, queued=-1, dialling=1)


def _recorded(state: DialerState, event: CallAttemptRecorded) -> None:
    attempt = state.live.get(event.attempt_call_id)
    request = state.requests.get(event.call_id)
    if event.outcome in ("answered", "machine"):
        if attempt is not None:
            attempt.answered = True
        if request is not None and not request.answered:
            request.answered = True
            _count(state, event.campaign_id, answered=1)
        return
    state.live.pop(event.attempt_call_id, None)
    if request is not None and event.outcome == "not_dialled":
        request.not_dialled += 1
    if request is not None and event.retry_at is not None:
        request.dialling = False
        request.next_at = event.retry_at
        _enqueue(state, request)


def _hang_up_noted(state: DialerState, event: CallAttemptHangUpNoted) -> None:
    attempt = state.live.get(event.attempt_call_id)
    if attempt is None:
        return
    attempt.hang_up_requested = True
    if attempt.twilio_call_sid is None:
        # Its dial report or first status callback cancels it (``cancellation``). A rebuild folds
        # the log before the dial reports, which then bring the sid and end the wait.
        state.cancel_when_known.setdefault(event.attempt_call_id, event.occurred_at)


def _completed(state: DialerState, event: CallRequestCompleted) -> None:
    for attempt_id in [k for k, a in state.live.items() if a.call_id == event.call_id]:
        del state.live[attempt_id]
    request = state.requests.pop(event.call_id, None)
    if request is None:
        return
    _dequeue(state, request)
    was_dialling = request.attempts > 0
    failed = 0 if event.outcome in ("completed", "machine") else 1
    _count(
        state,
        event.campaign_id,
        dialling=-1 if was_dialling else 0,
        queued=0 if was_dialling else -1,
        failed=failed,
        done=1,
    )


def _campaign_cancelled(state: DialerState, event: CampaignCancelled) -> None:
    found = state.campaigns.get(event.campaign_id)
    if found is not None:
        found.cancelled = True
    for request in [r for r in state.requests.values() if r.campaign_id == event.campaign_id]:
        if request.dialling:
            continue
        _dequeue(state, request)
        del state.requests[request.call_id]
        retrying = request.attempts > 0
        _count(state, event.campaign_id, queued=0 if retrying else -1, dialling=-1 if retrying else 0, done=1)
