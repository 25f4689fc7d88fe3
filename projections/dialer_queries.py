"""Read queries of the dialer's read models (tenant-scoped): campaign progress and call summaries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from projections.campaign_view import progress
from projections.dialer_models import CallSummary, Campaign, CampaignCall

Row = dict[str, Any]


async def get_campaign(session: AsyncSession, tenant_id: str, campaign_id: str) -> Row | None:
    """The campaign with its progress figures, or None (another tenant's reads as missing)."""
    query = select(Campaign.__table__).where(
        Campaign.tenant_id == tenant_id, Campaign.campaign_id == campaign_id
    )
    found = (await session.execute(query)).mappings().one_or_none()
    if found is None:
        return None
    stages = await session.execute(
        select(
            CampaignCall.stage,
            func.count().label("n"),
            func.count().filter(CampaignCall.answered).label("answered"),
            func.count().filter(CampaignCall.failed).label("failed"),
        )
        .where(CampaignCall.campaign_id == campaign_id)
        .group_by(CampaignCall.stage)
    )
    counts: dict[str, int] = {"answered": 0, "failed": 0}
    for stage, n, answered, failed in stages.all():
        counts[stage] = n
        counts["answered"] += answered
        counts["failed"] += failed
    row = dict(found)
    return row | progress(counts, row["total"], row["paused"], row["cancelled"])


async def call_summaries(session: AsyncSession, tenant_id: str, call_ids: list[str]) -> dict[str, Row]:
    """The summaries of a page of calls, by call id (calls without one are absent)."""
    if not call_ids:
        return {}
    query = select(CallSummary.__table__).where(
        CallSummary.tenant_id == tenant_id, CallSummary.call_id.in_(call_ids)
    )
    return {row["call_id"]: dict(row) for row in (await session.execute(query)).mappings()}


async def call_summary(session: AsyncSession, tenant_id: str, call_id: str) -> Row | None:
    query = select(CallSummary.__table__).where(
        CallSummary.tenant_id == tenant_id, CallSummary.call_id == call_id
    )
    found = (await session.execute(query)).mappings().one_or_none()
    return dict(found) if found is not None else None
