"""The campaign projection: campaign and campaign_call rows from voice.dialer.events.v1, and the
dialer's refusals of single calls as command results (what `POST /api/calls` waits on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeGuard, get_args

from sqlalchemy import any_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from projections.bulk import text_array, upsert_many
from projections.campaign_view import PLACE_CALL, CallStage, CampaignBatch, call_ids_of, fold
from projections.command_result import TABLE as RESULTS
from projections.command_result import record_result
from projections.dialer_models import Campaign, CampaignCall
from projections.runner import UnappliableError
from schemas.catalog import DIALER_EVENTS
from schemas.dialer import DialerEvent, DialerRequestRejected
from schemas.registry import Record

_EVENT_TYPES = get_args(DialerEvent)


class CampaignProjection:
    """Folds the dialer's events into campaign progress; refused single calls become command results."""

    tables: ClassVar[tuple[str, ...]] = ("campaign", "campaign_call", RESULTS)

    def __init__(self, *, name: str = "campaigns", topic: str = DIALER_EVENTS.name) -> None:
        self.name = name
        self.topics: tuple[str, ...] = (topic,)

    def aggregate_of(self, record: Record) -> tuple[str, int]:
        if not isinstance(record, _EVENT_TYPES):
            raise UnappliableError(f"{type(record).__name__} is not a dialer event")
        return f"dialer:{record.agent_id}", record.seq

    async def apply(self, session: AsyncSession, record: Record) -> None:
        await self.apply_batch(session, [record])

    async def apply_batch(
        self, session: AsyncSession, records: Sequence[Record]
    ) -> list[tuple[int, Exception]]:
        if not all(isinstance(r, _EVENT_TYPES) for r in records):
            raise UnappliableError("a batch of dialer events holds something else")
        for record in records:
            if _refused_single_call(record):
                # The API's PlaceCall correlates by call id. A duplicate is not the request's
                # outcome: the call it repeats has its own (same id, when the API sent both).
                await record_result(
                    session,
                    correlation_id=record.call_id or "",
                    tenant_id=record.tenant_id,
                    aggregate_id=record.call_id or "",
                    at=record.occurred_at,
                    code=record.reason,
                    reason=record.detail or record.reason,
                )
        wanted = [r for r in records if getattr(r, "campaign_id", None) is not None]
        if not wanted:
            return []
        ids = sorted(call_ids_of(wanted))
        found = await session.execute(
            select(CampaignCall.__table__).where(CampaignCall.call_id == any_(text_array(ids)))
        )
        batch = CampaignBatch(calls={row["call_id"]: CallStage(**row) for row in found.mappings()})
        for record in wanted:
            fold(batch, record)
        await _write(session, batch)
        return []

    async def flush(self, session: AsyncSession) -> None:
        return None


def _refused_single_call(record: Record) -> TypeGuard[DialerRequestRejected]:
    return (
        isinstance(record, DialerRequestRejected)
        and record.command_type == PLACE_CALL
        and record.campaign_id is None
        and bool(record.call_id)
        and record.reason != "duplicate"
    )


async def _write(session: AsyncSession, batch: CampaignBatch) -> None:
    created = [row for row in batch.campaigns.values() if "name" in row]
    await upsert_many(session, "campaign", created, ["campaign_id"])
    for row in batch.campaigns.values():
        if "name" not in row:
            values: dict[str, Any] = {k: v for k, v in row.items() if k != "campaign_id"}
            await session.execute(
                update(Campaign).where(Campaign.campaign_id == row["campaign_id"]).values(**values)
            )
    for campaign_id in batch.cancelled:
        # Requests of the campaign this batch did not touch: the dialer dropped the waiting ones.
        await session.execute(
            update(CampaignCall)
            .where(CampaignCall.campaign_id == campaign_id, CampaignCall.stage.in_(("queued", "retrying")))
            .values(stage="done")
        )
    await upsert_many(session, "campaign_call", [c.row() for c in batch.calls.values()], ["call_id"])
