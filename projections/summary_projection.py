"""The post-call projection: call_summary rows from voice.postcall.events.v1 (summaries and failures)."""

from __future__ import annotations

from typing import ClassVar, get_args

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.dialer_models import CallSummary
from projections.runner import UnappliableError
from schemas.catalog import POSTCALL_EVENTS
from schemas.dialer import CallSummarized, CallSummaryFailed, PostCallEvent
from schemas.registry import Record

_EVENT_TYPES = get_args(PostCallEvent)


class SummaryProjection:
    """Keeps each call's summary and outcome label, or why it has none; webhook attempts are skipped."""

    tables: ClassVar[tuple[str, ...]] = ("call_summary",)

    def __init__(self, *, name: str = "summaries", topic: str = POSTCALL_EVENTS.name) -> None:
        self.name = name
        self.topics: tuple[str, ...] = (topic,)

    def aggregate_of(self, record: Record) -> tuple[str, int] | None:
        if isinstance(record, CallSummarized):
            return f"summary:{record.call_id}", record.seq
        if isinstance(record, CallSummaryFailed):
            # Its own aggregate, so a summary a crash-replay did produce afterwards, with the
            # same seq, still applies.
            return f"summary-failed:{record.call_id}", record.seq
        if isinstance(record, _EVENT_TYPES):
            return None  # webhook attempts: read past, with no position row per attempt
        raise UnappliableError(f"{type(record).__name__} is not a post-call event")

    async def apply(self, session: AsyncSession, record: Record) -> None:
        if isinstance(record, CallSummarized | CallSummaryFailed):
            await _refuse_another_tenants(session, record)
        if isinstance(record, CallSummarized):
            await session.execute(_summarized(record))
        elif isinstance(record, CallSummaryFailed):
            await session.execute(_failed(record))

    async def flush(self, session: AsyncSession) -> None:
        return None


async def _refuse_another_tenants(session: AsyncSession, record: CallSummarized | CallSummaryFailed) -> None:
    # The calls projection refuses another tenant's fact for a call id the same way: the row
    # stays its tenant's, and the record is dead-lettered with the reason rather than dropped.
    owner = await session.scalar(select(CallSummary.tenant_id).where(CallSummary.call_id == record.call_id))
    if owner is not None and owner != record.tenant_id:
        raise UnappliableError(f"call {record.call_id} belongs to another tenant")


def _summarized(record: CallSummarized) -> Insert:
    row: dict[str, object] = {
        "call_id": record.call_id,
        "tenant_id": record.tenant_id,
        "agent_id": record.agent_id,
        "summary": record.summary,
        "outcome_label": record.outcome_label,
        "model": record.model,
        "summarized_at": record.occurred_at,
        "status": "summarized",
        "failure_reason": None,
    }
    stmt = insert(CallSummary).values(row)
    updates = {k: stmt.excluded[k] for k in row if k != "call_id"}
    return stmt.on_conflict_do_update(index_elements=["call_id"], set_=updates)


def _failed(record: CallSummaryFailed) -> Insert:
    row: dict[str, object] = {
        "call_id": record.call_id,
        "tenant_id": record.tenant_id,
        "agent_id": record.agent_id,
        "summary": None,
        "outcome_label": None,
        "model": record.model,
        "summarized_at": record.occurred_at,
        "status": "failed",
        "failure_reason": f"{record.reason} (after {record.attempts} attempts)",
    }
    stmt = insert(CallSummary).values(row)
    updates = {k: stmt.excluded[k] for k in row if k != "call_id"}
    # A summary that did arrive (the two are separate aggregates) is never replaced by a failure.
    return stmt.on_conflict_do_update(
        index_elements=["call_id"], set_=updates, where=CallSummary.status == "failed"
    )
