"""Builders of dialer inputs and agent definitions for the dialer decider's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.agents import AgentConfig, AgentVersionPublished
from schemas.calls import CallEnded, CallFailed, HangUpRequested, TelephonyStatusChanged
from schemas.dialer import CallDialled, DialerEvent, PlaceCall
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CampaignId, CorrelationId, EventId, TenantId
from streams.dialer.decider import DialerInput, DialerOptions, Tick, step
from streams.dialer.policy import RetryPolicy
from streams.dialer.state import DialerState, observe_agent

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, 12:00 UTC
TENANT = TenantId("tenant-1")
AGENT = AgentId("agent-1")
OPTIONS = DialerOptions(
    retry=RetryPolicy(max_attempts=3, base_s=10, factor=2, cap_s=60), tenant_max_concurrent_calls=5
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def config(**overrides: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "system_prompt": "You are a test.",
        "voice": "Puck",
        "language": "en-US",
        "model": "gemini-live",
        "max_duration_s": 600,
        "silence_timeout_s": 0,
        "record_calls": False,
        "max_concurrent_calls": 2,
        "answering_machine_policy": "hang_up",
        "timezone": "UTC",
        "phone_numbers": ("+15550000001",),
    }
    return AgentConfig(**(values | overrides))


def published(agent: AgentId = AGENT, version: int = 1, **overrides: Any) -> AgentVersionPublished:
    return AgentVersionPublished(
        tenant_id=TENANT,
        agent_id=agent,
        seq=version + 1,
        event_id=derive_event_id(agent, version + 1),
        occurred_at=T0,
        correlation_id=CorrelationId("c"),
        version=version,
        config=config(**overrides),
    )


def given_agents(*facts: AgentVersionPublished) -> DialerState:
    state = DialerState(tenant_id=TENANT)
    for fact in facts:
        observe_agent(state, fact)
    return state


def _env(t: float) -> dict[str, Any]:
    return {
        "tenant_id": TENANT,
        "seq": 0,
        "event_id": EventId(str(uuid.uuid4())),
        "occurred_at": at(t),
        "correlation_id": CorrelationId("corr"),
    }


def place(
    call: str, t: float = 0, to: str = "+15551230000", agent: AgentId = AGENT, **extra: Any
) -> PlaceCall:
    return PlaceCall(
        **_env(t),
        agent_id=agent,
        to_number=to,
        idempotency_key=extra.pop("key", call),
        call_id=CallId(call),
        campaign_id=extra.pop("campaign", None),
        **extra,
    )


def status(call: str, status_: str, t: float, answered_by: str | None = None) -> TelephonyStatusChanged:
    return TelephonyStatusChanged(
        **_env(t), call_id=CallId(call), twilio_call_sid=f"CA{call}", status=status_, answered_by=answered_by
    )


def dialled(call: str, t: float, attempt: int = 1, request: str | None = None) -> CallDialled:
    """The dial report of ``call`` (attempt ``attempt`` of ``request``, itself by default)."""
    return CallDialled(
        **_env(t),
        agent_id=AGENT,
        call_id=CallId(request or call),
        attempt_call_id=CallId(call),
        attempt=attempt,
        twilio_call_sid=f"CA{call}",
    )


def hang_up_requested(call: str, t: float, requested_by: str = "operator") -> HangUpRequested:
    return HangUpRequested(
        **_env(t), call_id=CallId(call), requested_by=requested_by, reason="operator_ended"
    )


def ended(call: str, reason: str, t: float) -> CallEnded:
    return CallEnded(**_env(t), call_id=CallId(call), reason=reason)


def failed(call: str, t: float) -> CallFailed:
    return CallFailed(**_env(t), call_id=CallId(call), reason="telephony_failed")


def tick(t: float) -> Tick:
    return Tick(tenant_id=TENANT, now=at(t))


def run(state: DialerState, *inputs: DialerInput, options: DialerOptions = OPTIONS) -> list[DialerEvent]:
    """Feed inputs in order; return every event they caused."""
    events: list[DialerEvent] = []
    for input_ in inputs:
        events.extend(step(state, input_, options))
    return events


def kinds(events: list[DialerEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def campaign(name: str) -> CampaignId:
    return CampaignId(name)
