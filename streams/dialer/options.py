"""The dialer's limits that are not (yet) part of an agent's definition."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.dialer.policy import RetryPolicy


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
