"""Follows call events and says which finished calls need a summary, with what (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.calls import CallEnded, CallFailed, CallReceived, TranscriptSegment
from schemas.ids import AgentId, CallId, CorrelationId, TenantId


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryJob:
    tenant_id: TenantId
    call_id: CallId
    agent_id: AgentId
    correlation_id: CorrelationId
    turns: list[tuple[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StartNotSeen:
    """A call ended that was never seen to start: there is nothing to summarise it from."""

    tenant_id: TenantId
    call_id: CallId
    correlation_id: CorrelationId


@dataclass(slots=True)
class _Call:
    received: CallReceived
    segments: dict[int, tuple[str, str]] = field(default_factory=dict)


class CallTracker:
    """Calls from CallReceived to their end; a call that ends with no final transcript needs none."""

    def __init__(self) -> None:
        self._calls: dict[CallId, _Call] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def forget(self, call_id: CallId) -> None:
        self._calls.pop(call_id, None)

    def observe(self, event: object) -> SummaryJob | StartNotSeen | None:
        match event:
            case CallReceived():
                self._calls.setdefault(event.call_id, _Call(event))
            case TranscriptSegment() if event.final and event.text.strip():
                call = self._calls.get(event.call_id)
                if call is not None:
                    call.segments[event.segment_index] = (event.speaker, event.text)
            case CallEnded() | CallFailed():
                if event.call_id not in self._calls:
                    return StartNotSeen(
                        tenant_id=event.tenant_id, call_id=event.call_id, correlation_id=event.correlation_id
                    )
                return self._finish(event.call_id)
            case _:
                return None
        return None

    def _finish(self, call_id: CallId) -> SummaryJob | None:
        call = self._calls.pop(call_id)
        if not call.segments:
            return None
        return SummaryJob(
            tenant_id=call.received.tenant_id,
            call_id=call_id,
            agent_id=call.received.agent_id,
            correlation_id=call.received.correlation_id,
            turns=[call.segments[i] for i in sorted(call.segments)],
        )
