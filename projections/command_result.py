"""Rows of `command_result`: whether the command behind a correlation id was applied or rejected."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import CommandResult

TABLE = CommandResult.__tablename__
"""Shared: every projection that records a command's outcome writes it (and declares it in ``tables``)."""


async def record_result(
    session: AsyncSession,
    *,
    correlation_id: str,
    tenant_id: str,
    aggregate_id: str,
    at: datetime,
    code: str | None = None,
    reason: str | None = None,
) -> None:
    """Applied when ``code`` is None, else rejected; the first outcome of a command wins."""
    row = {
        "correlation_id": correlation_id,
        "tenant_id": tenant_id,
        "aggregate_id": aggregate_id,
        "status": "applied" if code is None else "rejected",
        "code": code,
        "reason": reason,
        "recorded_at": at,
    }
    await session.execute(insert(CommandResult).values(row).on_conflict_do_nothing())
