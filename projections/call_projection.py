"""The call projection: call, call_event, transcript_segment, tool_call, recording, analytics_daily."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import date
from typing import Any, ClassVar, get_args

from sqlalchemy import any_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections import call_batch, call_view
from projections.bulk import copy_rows, text_array, upsert_many
from projections.models import Call, CallEvent, Recording, ToolCall, TranscriptSegment
from projections.runner import UnappliableError
from schemas import calls
from schemas.catalog import CALL_EVENTS
from schemas.registry import Record

_CALL_EVENT_TYPES = get_args(calls.CallEvent)
_CALL_COLUMNS = [f.name for f in dataclasses.fields(call_view.CallView)]
_TIMELINE_COLUMNS = ("call_id", "seq", "tenant_id", "event_id", "event_type", "occurred_at", "payload")

# Projection processes that share a schema (a consumer group of several, or a replay with
# --jobs) may recompute the same day at once. Under READ COMMITTED each would miss the other's
# uncommitted calls and the last commit would win with half the figures. A transaction-scoped
# lock per day, taken in one global order (no deadlocks), makes the later recompute wait for
# the earlier commit; its statement then starts after that commit and sees both.
_LOCK_DAYS_SQL = text(
    "SELECT pg_advisory_xact_lock(k)"
    " FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS u(k, n) ORDER BY n"
)

# One statement for every (tenant, agent, UTC day) a batch touched; a day left with no calls gets zeros.
_ANALYTICS_SQL = text(
    """
    INSERT INTO analytics_daily (tenant_id, agent_id, day, calls, answered, completed, failed,
        avg_duration_ms, p95_duration_ms, interruptions, tool_calls,
        avg_first_agent_audio_ms, p95_first_agent_audio_ms)
    SELECT d.tenant_id, d.agent_id, d.day, count(c.call_id), count(c.answered_at),
        count(c.call_id) FILTER (WHERE c.status = 'completed'),
        count(c.call_id) FILTER (WHERE c.status = 'failed'),
        avg(c.duration_ms) FILTER (WHERE c.answered_at IS NOT NULL AND c.ended_at IS NOT NULL),
        percentile_cont(0.95) WITHIN GROUP (ORDER BY c.duration_ms)
            FILTER (WHERE c.answered_at IS NOT NULL AND c.ended_at IS NOT NULL),
        coalesce(sum(c.interruptions), 0), coalesce(sum(c.tool_calls), 0),
        avg(c.first_agent_audio_ms),
        percentile_cont(0.95) WITHIN GROUP (ORDER BY c.first_agent_audio_ms)
    FROM unnest(CAST(:tenants AS text[]), CAST(:agents AS text[]), CAST(:days AS date[]))
        AS d(tenant_id, agent_id, day)
    LEFT JOIN call c ON c.tenant_id = d.tenant_id AND c.agent_id = d.agent_id
        AND c.started_at >= (d.day::timestamp AT TIME ZONE 'UTC')
        AND c.started_at < ((d.day + 1)::timestamp AT TIME ZONE 'UTC')
    GROUP BY d.tenant_id, d.agent_id, d.day
    ON CONFLICT (tenant_id, agent_id, day) DO UPDATE SET
        calls = excluded.calls, answered = excluded.answered, completed = excluded.completed,
        failed = excluded.failed, avg_duration_ms = excluded.avg_duration_ms,
        p95_duration_ms = excluded.p95_duration_ms, interruptions = excluded.interruptions,
        tool_calls = excluded.tool_calls, avg_first_agent_audio_ms = excluded.avg_first_agent_audio_ms,
        p95_first_agent_audio_ms = excluded.p95_first_agent_audio_ms
    """
)


class CallProjection:
    """Folds voice.calls.events.v1 into the call read models."""

    tables: ClassVar[tuple[str, ...]] = (
        "call",
        "call_event",
        "transcript_segment",
        "tool_call",
        "recording",
        "analytics_daily",
    )

    def __init__(self, *, name: str = "calls", topic: str = CALL_EVENTS.name) -> None:
        self.name = name
        self.topics: tuple[str, ...] = (topic,)
        self._dirty_days: set[tuple[str, str, date]] = set()

    def aggregate_of(self, record: Record) -> tuple[str, int]:
        if not isinstance(record, _CALL_EVENT_TYPES):
            raise UnappliableError(f"{type(record).__name__} is not a call event")
        return record.call_id, record.seq

    async def apply(self, session: AsyncSession, record: Record) -> None:
        if not isinstance(record, _CALL_EVENT_TYPES):
            raise UnappliableError(f"{type(record).__name__} is not a call event")
        # Core rows, not ORM objects: the identity map would hand back stale objects after upserts.
        query = select(Call.__table__).where(Call.call_id == record.call_id)
        found = (await session.execute(query)).mappings().one_or_none()
        if found is not None and found["tenant_id"] != record.tenant_id:
            raise UnappliableError(f"call {record.call_id} belongs to another tenant")
        known = _view_of(found) if found is not None else None
        view = call_view.evolve(known or call_view.initial(record), record)
        await _upsert(session, Call, view.row(), ["call_id"])
        await session.execute(
            insert(CallEvent).values(call_view.timeline_row(record)).on_conflict_do_nothing()
        )
        await _side_rows(session, record)
        # Only once its rows are in: a record whose savepoint is rolled back changes no day.
        self._dirty_days |= call_batch.analytics_days(known, view)

    async def apply_batch(
        self, session: AsyncSession, records: Sequence[Record]
    ) -> list[tuple[int, Exception]]:
        """Apply records in order, in a handful of statements; returns the refused ones (by index)."""
        events = [r for r in records if isinstance(r, _CALL_EVENT_TYPES)]
        if len(events) != len(records):
            raise UnappliableError("a batch of call events holds something else")
        ids = sorted({e.call_id for e in events})
        found = await session.execute(select(Call.__table__).where(Call.call_id == any_(text_array(ids))))
        batch = call_batch.fold_batch({row["call_id"]: _view_of(row) for row in found.mappings()}, events)
        await upsert_many(session, "call", batch.call_rows(), ["call_id"])
        await copy_rows(session, "call_event", _TIMELINE_COLUMNS, batch.timeline, json_columns=["payload"])
        transcripts, tools = list(batch.transcripts.values()), list(batch.tool_calls.values())
        await upsert_many(session, "transcript_segment", transcripts, ["call_id", "segment_index"])
        await upsert_many(session, "tool_call", tools, ["call_id", "tool_call_id"])
        await upsert_many(session, "recording", list(batch.recordings.values()), ["call_id"])
        self._dirty_days |= batch.dirty_days
        return [(index, UnappliableError(reason)) for index, reason in batch.refused]

    async def flush(self, session: AsyncSession) -> None:
        dirty, self._dirty_days = sorted(self._dirty_days), set()
        if dirty:
            await session.execute(_LOCK_DAYS_SQL, {"keys": sorted({day_lock_key(*day) for day in dirty})})
            tenants, agents, days = (list(column) for column in zip(*dirty, strict=True))
            await session.execute(_ANALYTICS_SQL, {"tenants": tenants, "agents": agents, "days": days})


def day_lock_key(tenant_id: str, agent_id: str, day: date) -> int:
    """A stable signed 64-bit advisory lock key for one analytics day."""
    digest = hashlib.blake2b(f"analytics_daily\x1f{tenant_id}\x1f{agent_id}\x1f{day}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _view_of(row: Any) -> call_view.CallView:
    return call_view.CallView(**{name: row[name] for name in _CALL_COLUMNS})


async def _side_rows(session: AsyncSession, event: calls.CallEvent) -> None:
    match event:
        case calls.TranscriptSegment():
            await _upsert(
                session, TranscriptSegment, call_view.transcript_row(event), ["call_id", "segment_index"]
            )
        case calls.ToolCallRequested() | calls.ToolCallCompleted() | calls.ToolCallFailed():
            await _upsert(session, ToolCall, call_view.tool_call_row(event), ["call_id", "tool_call_id"])
        case calls.RecordingAvailable():
            await _upsert(session, Recording, call_view.recording_row(event), ["call_id"])
        case _:
            return


async def _upsert(session: AsyncSession, model: Any, row: dict[str, Any], keys: list[str]) -> None:
    stmt = insert(model).values(row)
    updates = {name: stmt.excluded[name] for name in row if name not in keys}
    await session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))
