"""Which queued requests the dialer starts now, best first, within every limit; and the last check."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from functools import lru_cache

from schemas.dialer import CallAttemptStarted, DialerEvent, DialerRequestRejected
from schemas.ids import AgentId
from streams.dialer.emitter import PLACE_CALL, Emitter, attempt_call_id, completed
from streams.dialer.options import DialerOptions
from streams.dialer.policy import CallingWindow, parse_window
from streams.dialer.state import AgentInfo, DialerState, Request


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
    out = Emitter(state, now)
    grace = timedelta(seconds=options.unknown_agent_grace_s)
    for _, _, call_id in list(state.queue):
        request = state.requests[call_id]
        if not full_scan and request.agent_id not in open_agents:
            continue
        verdict = _readiness(state, request, now, live, grace)
        if verdict == "expired":
            completed(out, request, "deadline_passed", False)
        elif verdict == "unknown":
            _withdrawn(out, request, "unknown_agent", f"no published agent {request.agent_id}")
        elif verdict == "foreign_number":
            _withdrawn(out, request, "invalid_number", _foreign_number(state, request))
        elif verdict == "gone":
            completed(out, request, "failed", False)
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


def _withdrawn(out: Emitter, request: Request, reason: str, detail: str) -> None:
    """Refuse a request already accepted, as its PlaceCall would have been refused."""
    out.add(
        DialerRequestRejected(
            **out.env(request.agent_id, request.call_id),
            command_type=PLACE_CALL,
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


def next_dial_at(agent: AgentInfo | None, now: datetime) -> datetime:
    """The first instant from ``now`` at which the agent's calling window lets a call go out."""
    window = _window(agent.config.calling_window, agent.config.timezone) if agent else None
    return window.next_open(now) if window is not None else now


def _start(state: DialerState, out: Emitter, request: Request, options: DialerOptions) -> None:
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
