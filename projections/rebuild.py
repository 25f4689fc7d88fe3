"""Rebuilding read models from the log into their own schema: the schema, its marker, a bounded replay.

The rebuild schema holds everything a resumed run needs: the migrated tables, the projections'
checkpoints and aggregate positions (written with the rows, as the live service does), and a
``replay_marker`` row saying which projections it rebuilds and from when. Rerunning the same
replay into it continues from the checkpoints; anything else is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from infra.eventlog.reading import end_offsets, offsets_at
from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.migrate import upgrade_database
from infra.settings import Settings
from projections.database import make_schema_engine
from projections.position import load_checkpoints
from projections.replay_fold import Plan, ReplayProgress, ReplayRequest, fold_plans, projections_for
from projections.replay_jobs import Share, run_jobs, shares_of
from projections.replay_tables import written_tables
from projections.runner import Projection

MARKER = "replay_marker"


class ReplayError(Exception):
    """The replay cannot go ahead; the message says why and what to do."""


def resolve_names(names: Sequence[str]) -> tuple[str, ...]:
    """The projections named (``all`` is every replayable one), in service order; unknown ones refused.

    Replayable are the projections that declare the tables they write
    (``projections.replay_tables``), since a swap must know exactly which tables it moves.
    """
    replayable = tuple(written_tables())
    valid = (*replayable, "all")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ReplayError(f"unknown projection(s): {', '.join(unknown)}; valid: {', '.join(valid)}")
    if not names:
        raise ReplayError(f"name at least one projection: {', '.join(valid)}")
    wanted = set(replayable) if "all" in names else set(names)
    return tuple(p for p in replayable if p in wanted)


@dataclass(frozen=True, slots=True, kw_only=True)
class Marker:
    """What a rebuild schema was started for."""

    projections: tuple[str, ...]
    since: datetime | None
    swapped_into: str | None = None


async def schema_tables(engine: AsyncEngine, schema: str) -> set[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
        )
        return {name for (name,) in rows.all()}


async def read_marker(engine: AsyncEngine, schema: str) -> Marker | None:
    if MARKER not in await schema_tables(engine, schema):
        return None
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(f'SELECT projections, since, swapped_into FROM "{schema}".{MARKER}')
            )
        ).one_or_none()
    if row is None:
        return None
    return Marker(projections=tuple(row[0].split(",")), since=row[1], swapped_into=row[2])


async def prepare_schema(
    settings: Settings, engine: AsyncEngine, schema: str, projections: tuple[str, ...], since: datetime | None
) -> Marker:
    """Migrate a new or empty schema and mark it; an existing rebuild of the same replay is resumed."""
    tables = await schema_tables(engine, schema)
    if tables:
        marker = await read_marker(engine, schema)
        if marker is None:
            raise ReplayError(
                f"schema {schema} already exists and holds {len(tables)} tables that no replay "
                "started; choose another --into-schema (or drop it yourself if it is yours)"
            )
        if marker.projections != projections:
            raise ReplayError(
                f"schema {schema} is a rebuild of {', '.join(marker.projections)}, not of "
                f"{', '.join(projections)}; resume it with the same names or choose another --into-schema"
            )
        if marker.swapped_into is not None:
            raise ReplayError(
                f"schema {schema} was already swapped into {marker.swapped_into}; nothing to resume"
            )
        return marker
    await asyncio.to_thread(upgrade_database, settings.database, schema=schema)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                f'CREATE TABLE "{schema}".{MARKER} (projections text NOT NULL, since timestamptz, '
                "started_at timestamptz NOT NULL DEFAULT now(), swapped_into text, replaced_schema text)"
            )
        )
        await connection.execute(
            text(f'INSERT INTO "{schema}".{MARKER} (projections, since) VALUES (:p, :s)'),
            {"p": ",".join(projections), "s": since},
        )
    return Marker(projections=projections, since=since)


async def origin_offsets(
    consumer: AIOKafkaConsumer,
    parts: Sequence[TopicPartition],
    since: datetime | None,
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Where a replay starts: each partition's beginning, or its first record at or after ``since``."""
    if since is None:
        return dict(await consumer.beginning_offsets(parts))
    return await offsets_at(consumer, parts, since, ends)


async def run_replay(
    settings: Settings,
    request: ReplayRequest,
    *,
    on_plan: Callable[[int], None] = lambda total: None,
    on_advance: Callable[[int], None] = lambda n: None,
    stop: asyncio.Event | None = None,
) -> ReplayProgress:
    """Fold the log up to its current end into the rebuild schema, continuing from its checkpoints.

    With ``request.jobs`` above 1 the partitions still to fold are split across that many child
    processes (``projections.replay_jobs``); 1 folds them all here.
    """
    stop = stop or asyncio.Event()
    progress = ReplayProgress()
    engine = make_schema_engine(settings.database, request.schema)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    consumer = make_consumer(settings.kafka, group_id=None, max_partition_fetch_bytes=8 << 20)
    await start_consumer(consumer)
    await asyncio.sleep(0)  # let the group-less coordinator start before any early stop
    try:
        await consumer.topics()  # fresh metadata, read before any assign narrows it
        partitions = {p.name: _partitions(consumer, p) for p in projections_for(request)}
        plans = [
            await _plan(consumer, sessions, p, parts, request.since, progress)
            for p, parts in partitions.values()
        ]
        progress.planned = sum(ends[tp] - starts[tp] for _, starts, ends in plans for tp in starts)
        on_plan(progress.planned)
        shares = shares_of(plans, request.jobs)
        if len(shares) > 1 and not stop.is_set():  # one share would only add a child's start-up
            await _fold_in_children(settings, request, plans, shares, progress, on_advance, stop)
        else:
            await fold_plans(consumer, sessions, plans, request, progress, on_advance, stop)
    finally:
        await stop_consumer(consumer)
        await engine.dispose()
    return progress


async def _fold_in_children(
    settings: Settings,
    request: ReplayRequest,
    plans: list[Plan],
    shares: list[Share],
    progress: ReplayProgress,
    on_advance: Callable[[int], None],
    stop: asyncio.Event,
) -> None:
    progress.reached.update({tp: starts[tp] for _, starts, _ in plans for tp in starts})
    failures = await run_jobs(settings, request, shares, progress, on_advance, stop)
    if failures:
        # The caller says how to resume, or drops the schema when no job committed anything.
        raise ReplayError("; ".join(failures) + "; the others stopped at their checkpoints")


def _partitions(
    consumer: AIOKafkaConsumer, projection: Projection
) -> tuple[Projection, list[TopicPartition]]:
    parts = []
    for topic in projection.topics:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise ReplayError(f"topic {topic} ({projection.name}) does not exist on the broker")
        parts += [TopicPartition(topic, n) for n in sorted(numbers)]
    return projection, parts


async def _plan(
    consumer: AIOKafkaConsumer,
    sessions: async_sessionmaker[AsyncSession],
    projection: Projection,
    parts: list[TopicPartition],
    since: datetime | None,
    progress: ReplayProgress,
) -> Plan:
    ends = await end_offsets(consumer, parts)
    origin = await origin_offsets(consumer, parts, since, ends)
    async with sessions() as session:
        stored = await load_checkpoints(session, projection.name, [(tp.topic, tp.partition) for tp in parts])
    starts = {tp: stored.get((tp.topic, tp.partition), origin[tp]) for tp in parts}
    progress.origin.update(origin)
    return projection, {tp: min(s, ends[tp]) for tp, s in starts.items()}, ends
