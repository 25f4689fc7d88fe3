"""Kafka checkpoints and per-aggregate positions, read and written inside a projection's transaction."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Text, any_, bindparam, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import AggregatePosition, ProjectionCheckpoint

TopicPartition = tuple[str, int]


async def load_checkpoints(
    session: AsyncSession, projection: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The next offset of each partition that has a checkpoint."""
    if not partitions:
        return {}
    rows = await session.execute(
        select(ProjectionCheckpoint.topic, ProjectionCheckpoint.partition, ProjectionCheckpoint.next_offset)
        .where(ProjectionCheckpoint.projection == projection)
        .where(tuple_(ProjectionCheckpoint.topic, ProjectionCheckpoint.partition).in_(partitions))
    )
    return {(topic, partition): offset for topic, partition, offset in rows.all()}


async def save_checkpoints(
    session: AsyncSession, projection: str, next_offsets: Mapping[TopicPartition, int]
) -> None:
    if not next_offsets:
        return
    stmt = insert(ProjectionCheckpoint).values(
        [
            {"projection": projection, "topic": t, "partition": p, "next_offset": o}
            for (t, p), o in next_offsets.items()
        ]
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["projection", "topic", "partition"],
            set_={"next_offset": stmt.excluded.next_offset, "updated_at": stmt.excluded.updated_at},
        )
    )


async def load_positions(session: AsyncSession, projection: str, aggregate_ids: set[str]) -> dict[str, int]:
    """The last applied seq of each aggregate that has one."""
    if not aggregate_ids:
        return {}
    rows = await session.execute(
        select(AggregatePosition.aggregate_id, AggregatePosition.last_seq)
        .where(AggregatePosition.projection == projection)
        .where(
            AggregatePosition.aggregate_id == any_(bindparam("ids", sorted(aggregate_ids), type_=ARRAY(Text)))
        )
    )
    return {aggregate: seq for aggregate, seq in rows.all()}


async def save_positions(session: AsyncSession, projection: str, positions: Mapping[str, int]) -> None:
    if not positions:
        return
    stmt = insert(AggregatePosition)
    # executemany: one cached statement, pipelined, instead of compiling a VALUES list per batch.
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["projection", "aggregate_id"], set_={"last_seq": stmt.excluded.last_seq}
        ),
        [{"projection": projection, "aggregate_id": a, "last_seq": s} for a, s in positions.items()],
    )
