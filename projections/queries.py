"""The read interface of the read models: read-only, tenant-scoped queries (used by api and tools).

Every function takes the tenant id and filters on it, so an id of another tenant reads as missing;
the one exception, ``phone_number_holders``, guards numbers across tenants (a number routes to one
agent) and its callers tell another tenant's holder only that the number is taken.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import (
    Agent,
    AgentVersion,
    AnalyticsDaily,
    Call,
    CallEvent,
    CommandResult,
    Document,
    KnowledgeBase,
    Recording,
    ToolCall,
    TranscriptSegment,
)
from projections.unspaced_search import snippet, unspaced_query

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Row]
    next_cursor: str | None


class BadCursorError(ValueError):
    """A pagination cursor that this API did not issue."""


def encode_cursor(at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{key}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (time, key) of a cursor from encode_cursor: its time aware and in UTC's range, its key
    without a NUL (PostgreSQL text cannot hold one, so the query would fail as a bad value)."""
    try:
        text_at, key = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        at = datetime.fromisoformat(text_at)
        at.astimezone(UTC)  # 9999-12-31T23:00-05:00 has no such instant in UTC
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as err:
        raise BadCursorError("invalid cursor") from err
    if at.tzinfo is None or "\x00" in key:
        raise BadCursorError("invalid cursor")
    return at, key


async def _rows(session: AsyncSession, query: Select[Any]) -> list[Row]:
    return [dict(r) for r in (await session.execute(query)).mappings().all()]


async def _one(session: AsyncSession, query: Select[Any]) -> Row | None:
    found = (await session.execute(query)).mappings().one_or_none()
    return dict(found) if found is not None else None


async def _page(
    session: AsyncSession, query: Select[Any], at_col: Any, key_col: Any, cursor: str | None, limit: int
) -> Page:
    """Keyset pagination, newest first."""
    if cursor is not None:
        at, key = decode_cursor(cursor)
        query = query.where(or_(at_col < at, and_(at_col == at, key_col < key)))
    rows = await _rows(session, query.order_by(at_col.desc(), key_col.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return Page(rows, encode_cursor(last[at_col.key], last[key_col.key]) if last else None)


# Calls


async def get_call(session: AsyncSession, tenant_id: str, call_id: str) -> Row | None:
    return await _one(
        session, select(Call.__table__).where(Call.tenant_id == tenant_id, Call.call_id == call_id)
    )


async def list_calls(
    session: AsyncSession,
    tenant_id: str,
    *,
    status: str | None = None,
    agent_id: str | None = None,
    number: str | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    query = select(Call.__table__).where(Call.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Call.status == status)
    if agent_id is not None:
        query = query.where(Call.agent_id == agent_id)
    if number is not None:
        query = query.where(or_(Call.from_number == number, Call.to_number == number))
    if started_from is not None:
        query = query.where(Call.started_at >= started_from)
    if started_to is not None:
        query = query.where(Call.started_at < started_to)
    return await _page(session, query, Call.started_at, Call.call_id, cursor, limit)


async def call_timeline(session: AsyncSession, tenant_id: str, call_id: str) -> list[Row]:
    query = select(CallEvent.__table__).where(CallEvent.tenant_id == tenant_id, CallEvent.call_id == call_id)
    return await _rows(session, query.order_by(CallEvent.seq))


async def call_transcript(session: AsyncSession, tenant_id: str, call_id: str) -> list[Row]:
    query = select(TranscriptSegment.__table__).where(
        TranscriptSegment.tenant_id == tenant_id, TranscriptSegment.call_id == call_id
    )
    return await _rows(session, query.order_by(TranscriptSegment.segment_index))


async def call_tool_calls(session: AsyncSession, tenant_id: str, call_id: str) -> list[Row]:
    query = select(ToolCall.__table__).where(ToolCall.tenant_id == tenant_id, ToolCall.call_id == call_id)
    return await _rows(session, query.order_by(ToolCall.requested_at, ToolCall.tool_call_id))


async def call_recording(session: AsyncSession, tenant_id: str, call_id: str) -> Row | None:
    query = select(Recording.__table__).where(Recording.tenant_id == tenant_id, Recording.call_id == call_id)
    return await _one(session, query)


# Agents


async def get_agent(session: AsyncSession, tenant_id: str, agent_id: str) -> Row | None:
    return await _one(
        session, select(Agent.__table__).where(Agent.tenant_id == tenant_id, Agent.agent_id == agent_id)
    )


async def list_agents(
    session: AsyncSession, tenant_id: str, *, cursor: str | None = None, limit: int = 50
) -> Page:
    query = select(Agent.__table__).where(Agent.tenant_id == tenant_id)
    return await _page(session, query, Agent.created_at, Agent.agent_id, cursor, limit)


async def agent_versions(session: AsyncSession, tenant_id: str, agent_id: str) -> list[Row]:
    query = select(AgentVersion.__table__).where(
        AgentVersion.tenant_id == tenant_id, AgentVersion.agent_id == agent_id
    )
    return await _rows(session, query.order_by(AgentVersion.version))


_NUMBER_HOLDERS_SQL = text(
    """
    SELECT n AS phone_number, a.agent_id, a.tenant_id
    FROM agent a
    JOIN agent_version v ON v.agent_id = a.agent_id AND v.version = a.current_version
    CROSS JOIN LATERAL jsonb_array_elements_text(v.config -> 'phone_numbers') AS n
    WHERE a.status = 'active' AND a.agent_id <> :agent_id AND n = ANY(CAST(:numbers AS text[]))
    ORDER BY n, a.agent_id
    """
)


async def phone_number_holders(session: AsyncSession, numbers: Sequence[str], agent_id: str) -> list[Row]:
    """Active agents (any tenant) but ``agent_id`` whose current version routes one of ``numbers``."""
    if not numbers:
        return []
    params = {"numbers": list(numbers), "agent_id": agent_id}
    return [dict(row) for row in (await session.execute(_NUMBER_HOLDERS_SQL, params)).mappings()]


async def agent_version(session: AsyncSession, tenant_id: str, agent_id: str, version: int) -> Row | None:
    query = select(AgentVersion.__table__).where(
        AgentVersion.tenant_id == tenant_id,
        AgentVersion.agent_id == agent_id,
        AgentVersion.version == version,
    )
    return await _one(session, query)


async def command_result(session: AsyncSession, correlation_id: str) -> Row | None:
    """Whether the command with this correlation id was applied or rejected (None: not yet known)."""
    return await _one(
        session, select(CommandResult.__table__).where(CommandResult.correlation_id == correlation_id)
    )


# Knowledge


async def get_knowledge_base(session: AsyncSession, tenant_id: str, kb_id: str) -> Row | None:
    query = select(KnowledgeBase.__table__).where(
        KnowledgeBase.tenant_id == tenant_id, KnowledgeBase.kb_id == kb_id
    )
    return await _one(session, query)


async def list_knowledge_bases(
    session: AsyncSession, tenant_id: str, *, cursor: str | None = None, limit: int = 50
) -> Page:
    query = select(KnowledgeBase.__table__).where(KnowledgeBase.tenant_id == tenant_id)
    return await _page(session, query, KnowledgeBase.created_at, KnowledgeBase.kb_id, cursor, limit)


async def list_documents(session: AsyncSession, tenant_id: str, kb_id: str) -> list[Row]:
    query = select(Document.__table__).where(Document.tenant_id == tenant_id, Document.kb_id == kb_id)
    return await _rows(session, query.order_by(Document.added_at, Document.document_id))


async def get_document(session: AsyncSession, tenant_id: str, kb_id: str, document_id: str) -> Row | None:
    query = select(Document.__table__).where(
        Document.tenant_id == tenant_id, Document.kb_id == kb_id, Document.document_id == document_id
    )
    return await _one(session, query)


_SEARCH_SQL = text(
    """
    SELECT c.chunk_id, c.kb_id, c.document_id, d.title, c.ordinal,
           ts_rank_cd(c.tsv, q) AS rank,
           ts_headline('english', c.text, q,
                       'StartSel=<mark>, StopSel=</mark>, MaxWords=35, MinWords=12, MaxFragments=2')
               AS snippet
    FROM chunk c
    JOIN document d ON d.kb_id = c.kb_id AND d.document_id = c.document_id,
         websearch_to_tsquery('english', :query) q
    WHERE c.tenant_id = :tenant_id AND c.tsv @@ q
      AND (CAST(:kb_ids AS text[]) IS NULL OR c.kb_id = ANY(CAST(:kb_ids AS text[])))
    ORDER BY rank DESC, c.chunk_id
    LIMIT :limit
    """
)


# For queries in scripts without spaces between words (``projections.unspaced_search``): every
# term a substring of the chunk, none of the excluded ones; ranked by how often the terms occur.
# No index serves it: it reads the tenant's chunks (of the bases asked for), compared as
# chunk.search_text (normalised once, at the write); bench/bench_search.py has its cost.
# The terms are lower-cased here, by the function that made search_text: Python's lower() is not
# PostgreSQL's (İ, a word-final Σ; and a C ctype lower-cases ASCII only).
_SUBSTRING_SEARCH_SQL = text(
    """
    WITH include AS (SELECT DISTINCT lower(normalize(t, NFKC)) AS term
                     FROM unnest(CAST(:include AS text[])) t),
         exclude AS (SELECT lower(normalize(t, NFKC)) AS term FROM unnest(CAST(:exclude AS text[])) t)
    SELECT c.chunk_id, c.kb_id, c.document_id, d.title, c.ordinal, c.text,
           (SELECT sum((length(c.search_text) - length(replace(c.search_text, term, ''))) / length(term))
            FROM include) AS hits
    FROM chunk c
    JOIN document d ON d.kb_id = c.kb_id AND d.document_id = c.document_id
    WHERE c.tenant_id = :tenant_id
      AND (CAST(:kb_ids AS text[]) IS NULL OR c.kb_id = ANY(CAST(:kb_ids AS text[])))
      AND NOT EXISTS (SELECT 1 FROM include WHERE strpos(c.search_text, term) = 0)
      AND NOT EXISTS (SELECT 1 FROM exclude WHERE strpos(c.search_text, term) > 0)
    ORDER BY hits DESC, c.chunk_id
    LIMIT :limit
    """
)


async def search_chunks(
    session: AsyncSession, tenant_id: str, query: str, *, kb_ids: list[str] | None = None, limit: int = 5
) -> list[Row]:
    """Chunks matching ``query`` (web-search syntax), best first, each with a highlighted snippet.

    Full-text search, except for a query in a script written without spaces (Chinese,
    Japanese, Korean, Thai...), whose terms are matched as substrings.
    """
    unspaced = unspaced_query(query)
    if unspaced is None:
        params = {"tenant_id": tenant_id, "query": query, "kb_ids": kb_ids, "limit": limit}
        return [dict(r) for r in (await session.execute(_SEARCH_SQL, params)).mappings().all()]
    if not unspaced.include:
        return []  # only exclusions: nothing to look for
    params = {
        "tenant_id": tenant_id,
        "include": list(unspaced.include),
        "exclude": list(unspaced.exclude),
        "kb_ids": kb_ids,
        "limit": limit,
    }
    rows = (await session.execute(_SUBSTRING_SEARCH_SQL, params)).mappings().all()
    return [
        {
            "chunk_id": r["chunk_id"],
            "kb_id": r["kb_id"],
            "document_id": r["document_id"],
            "title": r["title"],
            "ordinal": r["ordinal"],
            "rank": float(r["hits"]),
            "snippet": snippet(r["text"], unspaced.include),
        }
        for r in rows
    ]


# Analytics

_RANGE_SQL = text(
    """
    SELECT count(*) AS calls, count(answered_at) AS answered,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           avg(duration_ms) FILTER (WHERE answered_at IS NOT NULL AND ended_at IS NOT NULL)
               AS avg_duration_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
               FILTER (WHERE answered_at IS NOT NULL AND ended_at IS NOT NULL) AS p95_duration_ms,
           coalesce(sum(interruptions), 0) AS interruptions, coalesce(sum(tool_calls), 0) AS tool_calls,
           avg(first_agent_audio_ms) AS avg_first_agent_audio_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY first_agent_audio_ms) AS p95_first_agent_audio_ms
    FROM call
    WHERE tenant_id = :tenant_id AND started_at >= :start AND started_at < :end
      AND (CAST(:agent_id AS text) IS NULL OR agent_id = CAST(:agent_id AS text))
    """
)

_CONCURRENCY_SQL = text(
    """
    SELECT b AS bucket_start,
           (SELECT count(*) FROM call
            WHERE tenant_id = :tenant_id
              AND (CAST(:agent_id AS text) IS NULL OR agent_id = CAST(:agent_id AS text))
              AND started_at < least(b + CAST(:step AS interval), CAST(:end AS timestamptz))
              AND coalesce(ended_at, now()) > b) AS concurrent_calls
    -- A call holds a line from its start (ringing included, answered or not) to its end; one not
    -- yet ended (or whose end never came) counts until now, never in a later bucket. The last
    -- bucket may be shorter than a step: it ends at :end, and is still shown.
    FROM generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz) - interval '1 microsecond',
                         CAST(:step AS interval)) AS b
    ORDER BY b
    """
)


async def analytics_summary(
    session: AsyncSession, tenant_id: str, start: datetime, end: datetime, agent_id: str | None = None
) -> Row:
    """Totals over [start, end), computed from the calls (percentiles do not add up across days)."""
    params = {"tenant_id": tenant_id, "start": start, "end": end, "agent_id": agent_id}
    return dict((await session.execute(_RANGE_SQL, params)).mappings().one())


async def analytics_daily(
    session: AsyncSession, tenant_id: str, first_day: date, last_day: date, agent_id: str | None = None
) -> list[Row]:
    query = select(AnalyticsDaily.__table__).where(
        AnalyticsDaily.tenant_id == tenant_id, AnalyticsDaily.day >= first_day, AnalyticsDaily.day <= last_day
    )
    if agent_id is not None:
        query = query.where(AnalyticsDaily.agent_id == agent_id)
    return await _rows(session, query.order_by(AnalyticsDaily.day, AnalyticsDaily.agent_id))


async def concurrent_calls(
    session: AsyncSession,
    tenant_id: str,
    start: datetime,
    end: datetime,
    step_s: int,
    agent_id: str | None = None,
) -> list[Row]:
    """Calls in progress during each ``step_s`` bucket of [start, end)."""
    params = {
        "tenant_id": tenant_id,
        "start": start,
        "end": end,
        "step": f"{step_s} seconds",
        "agent_id": agent_id,
    }
    return [dict(r) for r in (await session.execute(_CONCURRENCY_SQL, params)).mappings().all()]
