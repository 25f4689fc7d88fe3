"""A command at the HTTP edge: its fresh envelope, and the response its outcome settles to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from fastapi import Response

from api.commands import new_id, now
from api.problems import ProblemError
from schemas.envelope import derive_event_id
from schemas.ids import CorrelationId, EventId, TenantId


class Outcomes(Protocol):
    async def outcome(self, correlation_id: str) -> dict[str, Any] | None: ...


def envelope(tenant_id: str) -> dict[str, Any]:
    """The envelope fields of a new command (the caller adds its aggregate id)."""
    correlation = new_id("cmd")
    return {
        "tenant_id": TenantId(tenant_id),
        "seq": 0,
        "event_id": EventId(str(derive_event_id(correlation, 0, "command"))),
        "occurred_at": now(),
        "correlation_id": CorrelationId(correlation),
    }


async def settle(
    bus: Outcomes, correlation_id: str, response: Response, location: str, statuses: Mapping[str, int]
) -> bool:
    """True once applied; raises the problem of a rejection (its code's status, else 409);
    False, with 202 and ``location`` set on ``response``, while still pending."""
    outcome = await bus.outcome(correlation_id)
    if outcome is None:
        response.status_code = 202
        response.headers["Location"] = location
        return False
    if outcome["status"] == "rejected":
        raise ProblemError(statuses.get(outcome["code"], 409), outcome["reason"], code=outcome["code"])
    return True
