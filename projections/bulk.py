"""Many rows in one round trip, inside the session's transaction: COPY for new rows, executemany upserts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession


async def copy_rows(
    session: AsyncSession,
    table: str,
    columns: Sequence[str],
    rows: Sequence[dict[str, Any]],
    *,
    json_columns: Sequence[str] = (),
) -> None:
    """COPY rows that must be new (a duplicate key fails the statement, and so the batch)."""
    if not rows:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    names = ", ".join(columns)
    as_json = [columns.index(c) for c in json_columns]
    async with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            values = [row[c] for c in columns]
            for index in as_json:
                values[index] = json.dumps(values[index])
            await copy.write_row(values)


def text_array(values: Sequence[str], name: str = "ids") -> Any:
    """A text[] parameter, for ``column = ANY(...)`` (one cached statement whatever the count)."""
    return bindparam(name, list(values), type_=ARRAY(Text))


async def upsert_many(
    session: AsyncSession, table: str, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Upsert rows (unique by ``keys``): COPY into a temporary twin, then one INSERT ... ON CONFLICT.

    Each row updates only the columns it carries, as a single-row upsert would; rows with different
    column sets go in separate statements.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    stage = f"stage_{table}"
    for columns, group in groups.items():
        await session.execute(
            text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS")
        )
        await session.execute(text(f"TRUNCATE {stage}"))
        await copy_rows(session, stage, columns, group)
        names = ", ".join(columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
        await session.execute(
            text(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
            )
        )
