"""How the dialer's deciders number and collect the events they emit, and two they all emit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.dialer import CallRequestCompleted, DialerEvent
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId
from streams.dialer.state import DialerState, Request

PLACE_CALL = "voice.dialer.v1.PlaceCall"


def attempt_call_id(call_id: CallId, attempt: int) -> CallId:
    """The call id of the ``attempt``-th attempt of request ``call_id``."""
    return call_id if attempt == 1 else CallId(f"{call_id}-a{attempt}")


class Emitter:
    """Numbers events per agent from the state's counters, without touching the state."""

    def __init__(self, state: DialerState, now: datetime) -> None:
        self._state = state
        self._now = now
        self._seqs: dict[AgentId, int] = {}
        self.events: list[DialerEvent] = []

    @property
    def now(self) -> datetime:
        """When the events are decided (their ``occurred_at``)."""
        return self._now

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


def completed(out: Emitter, request: Request, outcome: str, answered: bool) -> None:
    """The request is over: no more attempts."""
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
