"""Outbound call requests, keyed by agent so one worker enforces each agent's concurrency."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from schemas.envelope import AgentEnvelope, doc
from schemas.ids import CallId, CampaignId

AVRO_NAMESPACE = "voice.dialer.v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceCall(AgentEnvelope):
    """Command: dial a number with this agent, within the time window given."""

    to_number: str = field(metadata=doc("E.164."))
    from_number: str | None = field(default=None, metadata=doc("E.164; None = one of the agent's numbers."))
    variables: dict[str, str] = field(
        default_factory=dict, metadata=doc("Per-call variables for the prompt template.")
    )
    priority: int = field(default=0, metadata=doc("Higher is dialled first."))
    not_before: datetime | None = None
    deadline: datetime | None = field(default=None, metadata=doc("Give up if not placed by then."))
    idempotency_key: str = field(metadata=doc("Same key, same request: placed at most once."))
    call_id: CallId = field(metadata=doc("Call id the placed call will carry."))
    campaign_id: CampaignId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelPlaceCall(AgentEnvelope):
    """Command: withdraw a PlaceCall not yet dialled; identify it by either key."""

    idempotency_key: str | None = None
    call_id: CallId | None = None


DialerRequest: TypeAlias = PlaceCall | CancelPlaceCall
