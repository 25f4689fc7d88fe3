"""/api/analytics: per-agent and overall figures over a date range."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import SessionDep, Viewer
from api.problems import ProblemError
from projections import queries

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
MAX_RANGE_DAYS = 366


class Figures(BaseModel):
    calls: int
    answered: int
    completed: int
    failed: int
    success_rate: float | None
    avg_duration_ms: float | None
    p95_duration_ms: float | None
    interruptions: int
    tool_calls: int
    avg_first_agent_audio_ms: float | None
    p95_first_agent_audio_ms: float | None


class DailyFigures(BaseModel):
    day: date
    agent_id: str
    calls: int
    answered: int
    completed: int
    failed: int
    avg_duration_ms: float | None
    p95_duration_ms: float | None


class ConcurrencyPoint(BaseModel):
    bucket_start: datetime
    concurrent_calls: int


class AnalyticsPublic(BaseModel):
    agent_id: str | None
    date_from: date
    date_to: date
    summary: Figures
    daily: list[DailyFigures]
    concurrency: list[ConcurrencyPoint]


def _figures(row: dict[str, object]) -> Figures:
    calls = int(row["calls"] or 0)  # type: ignore[call-overload]
    completed = int(row["completed"] or 0)  # type: ignore[call-overload]
    return Figures.model_validate(row | {"success_rate": completed / calls if calls else None})


async def _analytics(
    session: SessionDep, tenant_id: str, agent_id: str | None, date_from: date, date_to: date, bucket_s: int
) -> AnalyticsPublic:
    if date_to < date_from or (date_to - date_from).days >= MAX_RANGE_DAYS:
        raise ProblemError(400, f"date_to must be on or after date_from, within {MAX_RANGE_DAYS} days")
    if date_to >= date.max:
        raise ProblemError(400, f"date_to must be before {date.max.isoformat()}")
    start = datetime.combine(date_from, time(), tzinfo=UTC)
    end = datetime.combine(date_to + timedelta(days=1), time(), tzinfo=UTC)
    if (end - start).total_seconds() / bucket_s > 2000:
        raise ProblemError(400, "bucket_s is too small for this range (at most 2000 buckets)")
    summary = await queries.analytics_summary(session, tenant_id, start, end, agent_id)
    daily = await queries.analytics_daily(session, tenant_id, date_from, date_to, agent_id)
    points = await queries.concurrent_calls(session, tenant_id, start, end, bucket_s, agent_id)
    return AnalyticsPublic(
        agent_id=agent_id,
        date_from=date_from,
        date_to=date_to,
        summary=_figures(summary),
        daily=[DailyFigures.model_validate(d) for d in daily],
        concurrency=[ConcurrencyPoint.model_validate(p) for p in points],
    )


@router.get("", response_model=AnalyticsPublic)
async def overall(
    principal: Viewer,
    session: SessionDep,
    date_from: date,
    date_to: date,
    bucket_s: Annotated[int, Query(ge=60, le=86400)] = 3600,
) -> AnalyticsPublic:
    return await _analytics(session, principal.tenant_id, None, date_from, date_to, bucket_s)


@router.get("/agents/{agent_id}", response_model=AnalyticsPublic)
async def per_agent(
    agent_id: str,
    principal: Viewer,
    session: SessionDep,
    date_from: date,
    date_to: date,
    bucket_s: Annotated[int, Query(ge=60, le=86400)] = 3600,
) -> AnalyticsPublic:
    if await queries.get_agent(session, principal.tenant_id, agent_id) is None:
        raise ProblemError(404, f"no agent {agent_id}")
    return await _analytics(session, principal.tenant_id, agent_id, date_from, date_to, bucket_s)
