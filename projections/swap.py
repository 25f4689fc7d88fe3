"""Swapping rebuilt read models into the live schema in one transaction (see docs/adr/0007).

``ALTER TABLE ... SET SCHEMA`` moves a table with its indexes, constraints and rows without
copying anything, so the swap is a few catalog updates: the live tables go to a new
``replaced_<ts>`` schema, the rebuilt ones take their place, and the projections' rows of the
shared ``projection_checkpoint`` / ``aggregate_position`` tables are exchanged. A table other
projections write too (``command_result``) moves only when all its writers are swapped; else the
rebuilt rows are added to the live table (``projections.replay_tables``). Readers either
see all the old tables or all the new ones. The live tables are locked first, so a live
projection service pauses for the length of the swap; if the live checkpoints are ahead of the
rebuild's (events arrived since the replay ended), the swap refuses with ``RebuildBehindError``
and the caller replays the rest and tries again, so nothing the live models held is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.rebuild import MARKER, ReplayError
from projections.replay_tables import BOOKKEEPING, swap_tables


class RebuildBehindError(ReplayError):
    """The live checkpoints are ahead of the rebuild's: replay the rest, then swap."""


@dataclass(frozen=True, slots=True)
class SwapResult:
    live_schema: str
    replaced_schema: str
    tables: tuple[str, ...]
    merged: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Tables other projections write too, left in place with the rebuilt rows added (and by whom)."""


async def swap_into_live(
    engine: AsyncEngine, *, rebuild: str, live: str, projections: tuple[str, ...], at: datetime
) -> SwapResult:
    """Exchange the projections' tables of ``live`` for those of ``rebuild``, atomically."""
    plan = swap_tables(projections)
    tables = plan.moved
    replaced = f"replaced_{at:%Y%m%d%H%M%S}"
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL lock_timeout = '10s'"))
        await _check_tables(connection, live, (*tables, *plan.merged, *BOOKKEEPING))
        # The order a projection transaction touches them: positions first, checkpoints last.
        locked = ", ".join(f'"{live}".{t}' for t in ("aggregate_position", *tables, "projection_checkpoint"))
        await connection.execute(text(f"LOCK TABLE {locked} IN ACCESS EXCLUSIVE MODE"))
        await _refuse_if_behind(connection, rebuild, live, projections)
        await connection.execute(text(f'CREATE SCHEMA "{replaced}"'))
        for table in tables:
            await connection.execute(text(f'ALTER TABLE "{live}".{table} SET SCHEMA "{replaced}"'))
            await connection.execute(text(f'ALTER TABLE "{rebuild}".{table} SET SCHEMA "{live}"'))
        names = {"names": list(projections)}
        for table in BOOKKEEPING:
            await connection.execute(
                text(f'CREATE TABLE "{replaced}".{table} (LIKE "{live}".{table} INCLUDING ALL)')
            )
            mine = "WHERE projection = ANY(:names)"
            await connection.execute(
                text(f'INSERT INTO "{replaced}".{table} SELECT * FROM "{live}".{table} {mine}'), names
            )
            await connection.execute(text(f'DELETE FROM "{live}".{table} {mine}'), names)
            await connection.execute(
                text(f'INSERT INTO "{live}".{table} SELECT * FROM "{rebuild}".{table} {mine}'), names
            )
        for table in plan.merged:  # the other writers' rows stay; the rebuilt ones join them
            await connection.execute(
                text(f'INSERT INTO "{live}".{table} SELECT * FROM "{rebuild}".{table} ON CONFLICT DO NOTHING')
            )
        await connection.execute(
            text(f'UPDATE "{rebuild}".{MARKER} SET swapped_into = :live, replaced_schema = :replaced'),
            {"live": live, "replaced": replaced},
        )
    return SwapResult(live, replaced, tables, plan.merged)


async def _check_tables(connection: AsyncConnection, live: str, tables: tuple[str, ...]) -> None:
    rows = await connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": live}
    )
    missing = sorted(set(tables) - {name for (name,) in rows.all()})
    if missing:
        raise ReplayError(f"live schema {live} lacks {', '.join(missing)}: is it migrated?")


async def _refuse_if_behind(
    connection: AsyncConnection, rebuild: str, live: str, projections: tuple[str, ...]
) -> None:
    query = (
        "SELECT projection, topic, partition, next_offset FROM {schema}.projection_checkpoint "
        "WHERE projection = ANY(:names)"
    )
    names = {"names": list(projections)}
    live_rows = await connection.execute(text(query.format(schema=f'"{live}"')), names)
    rebuilt_rows = await connection.execute(text(query.format(schema=f'"{rebuild}"')), names)
    rebuilt = {(p, t, n): o for p, t, n, o in rebuilt_rows.all()}
    behind = [
        f"{p} {t}[{n}]: live at {o}, rebuild at {rebuilt.get((p, t, n), 0)}"
        for p, t, n, o in live_rows.all()
        if rebuilt.get((p, t, n), 0) < o
    ]
    if behind:
        raise RebuildBehindError("the live read models are ahead of the rebuild: " + "; ".join(behind))
