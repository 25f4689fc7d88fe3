"""Builders of the events the call decider emits, numbered after the state's last seq."""

import dataclasses
from datetime import datetime
from typing import TypedDict, TypeVar

from schemas.calls import (
    AVRO_NAMESPACE,
    END_REASONS,
    CallEnded,
    CallFact,
    CallFailed,
    CallInput,
    CommandRejected,
    EndCall,
    HangUpRequested,
)
from schemas.envelope import derive_event_id
from schemas.ids import CallId, CorrelationId, EventId, TenantId
from streams.calls.state import CallState

_Fact = TypeVar("_Fact", bound=CallFact)

# A requester's hang-up maps to the end reason it implies when its own reason is free text.
_REASON_BY_REQUESTER = {"caller": "caller_hung_up", "agent": "agent_hung_up"}


class Envelope(TypedDict):
    """The envelope fields of one emitted event."""

    tenant_id: TenantId
    call_id: CallId
    seq: int
    event_id: EventId
    occurred_at: datetime
    correlation_id: CorrelationId


def envelope(state: CallState | None, input_: CallInput, n: int) -> Envelope:
    """Envelope of the n-th (1-based) event caused by input_; time and correlation come from it."""
    seq = (state.seq if state else 0) + n
    call_id = state.call_id if state else input_.call_id
    return Envelope(
        tenant_id=state.tenant_id if state else input_.tenant_id,
        call_id=call_id,
        seq=seq,
        event_id=derive_event_id(call_id, seq),
        occurred_at=input_.occurred_at,
        correlation_id=input_.correlation_id,
    )


def appended(state: CallState | None, fact: _Fact, n: int = 1) -> _Fact:
    """The fact as it goes on the event log: same content, the log's seq and id."""
    return dataclasses.replace(fact, **envelope(state, fact, n))


def end_reason(requested_by: str, reason: str) -> str:
    """The END_REASONS value a hang-up request leads to."""
    if reason in END_REASONS:
        return reason
    return _REASON_BY_REQUESTER.get(requested_by, "completed")


def ended(state: CallState, input_: CallInput, n: int, reason: str, by: str | None) -> CallEnded:
    """CallEnded as the n-th event caused by input_."""
    return CallEnded(**envelope(state, input_, n), reason=reason, ended_by=by)


def failed(state: CallState, input_: CallInput, n: int, reason: str, detail: str | None) -> CallFailed:
    """CallFailed as the n-th event caused by input_."""
    return CallFailed(**envelope(state, input_, n), reason=reason, detail=detail)


def hang_up(state: CallState, input_: CallInput, requested_by: str, reason: str) -> HangUpRequested:
    """HangUpRequested decided by the machine itself (a command or a timer)."""
    return HangUpRequested(**envelope(state, input_, 1), requested_by=requested_by, reason=reason)


def rejected(state: CallState, command: EndCall, reason: str) -> CommandRejected:
    """CommandRejected recording why command was refused."""
    return CommandRejected(
        **envelope(state, command, 1),
        command_type=f"{AVRO_NAMESPACE}.{type(command).__name__}",
        reason=reason,
        rejected_event_id=command.event_id,
    )
