"""Call projection throughput into PostgreSQL, next to a plain COPY of the same rows (not a test).

Every mode starts from a fresh, migrated schema and takes the same encoded call events in batches of
``--batch`` records, one transaction per batch with the offsets, as the runner does after a Kafka
fetch (decode, seq skipping, rows, positions, checkpoints, analytics, commit). Kafka itself is left
out: this measures the apply side. The COPY ceiling writes the rows the projection ends with
(call, call_event, transcript_segment, tool_call, recording) in the same batches, nothing else.
With ``--processes N`` (default 2) the batched path also runs in N processes on one schema, the
partitions split between them as a consumer group of N projection services would split them.

    .venv/bin/python bench/bench_projection.py --calls 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.migrate import upgrade_database
from infra.settings import Settings
from infra.stack import running_stack
from projections import call_batch
from projections.bulk import copy_rows
from projections.call_projection import CallProjection
from projections.database import make_schema_engine
from projections.runner import Projection, ProjectionRunner
from schemas import calls
from schemas.catalog import CALL_EVENTS
from schemas.codec import Codec
from schemas.registry import Record
from tests.support.call_stream import T0, call_events

TOPIC = "voice.calls.events.v1"


@dataclass(frozen=True, slots=True)
class Message:
    """What the runner reads off a ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class NoDeadLetters:
    async def publish(self, message: Any, reason: str, error: BaseException) -> None:
        raise RuntimeError(f"the bench stream must apply cleanly: {reason}: {error}")


class OneByOne:
    """The call projection without its batch path."""

    def __init__(self, inner: CallProjection) -> None:
        self._inner, self.name, self.topics = inner, inner.name, inner.topics

    def aggregate_of(self, record: Record) -> tuple[str, int]:
        return self._inner.aggregate_of(record)

    async def apply(self, session: AsyncSession, record: Record) -> None:
        await self._inner.apply(session, record)

    async def flush(self, session: AsyncSession) -> None:
        await self._inner.flush(session)


def stream(
    n_calls: int, partitions: int = CALL_EVENTS.partitions, concurrent: int = 200
) -> list[tuple[calls.CallEvent, Message]]:
    """``n_calls`` calls of 10 events, ``concurrent`` at a time, spread over partitions like Kafka would."""
    codec = Codec.single_object()
    tenants = [f"tenant-{i}" for i in range(4)]
    out: list[tuple[calls.CallEvent, Message]] = []
    offsets = [0] * partitions
    for wave in range(0, n_calls, concurrent):
        per_call = []
        for n in range(wave, min(wave + concurrent, n_calls)):
            call_id = f"call-{uuid.uuid4().hex}"
            start = T0 + timedelta(minutes=n % 1440)
            per_call.append(
                call_events(tenants[n % 4], call_id, f"agent-{n % 40}", start=start, talk_s=30 + n % 300)
            )
        for step in range(10):
            for events in per_call:
                event = events[step]
                partition = hash(event.call_id) % partitions
                key = event.call_id.encode()
                out.append((event, Message(TOPIC, partition, offsets[partition], key, codec.encode(event))))
                offsets[partition] += 1
    return out


async def fresh_sessions(settings: Settings) -> tuple[Any, async_sessionmaker[AsyncSession]]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(upgrade_database, settings.database, schema=schema)
    engine = make_schema_engine(settings.database, schema)
    return engine, async_sessionmaker(engine, expire_on_commit=False)


async def run_projection(
    settings: Settings, projection: Projection, messages: Sequence[Message], batch: int
) -> float:
    engine, sessions = await fresh_sessions(settings)
    runner = ProjectionRunner(
        projection,
        session_factory=sessions,
        dead_letters=NoDeadLetters(),
        codec=Codec.single_object(),  # type: ignore[arg-type]
    )
    started = time.perf_counter()
    for i in range(0, len(messages), batch):
        await runner.process(messages[i : i + batch])
    elapsed = time.perf_counter() - started
    await engine.dispose()
    assert runner.applied == len(messages), (runner.applied, len(messages))
    return len(messages) / elapsed


def _one_process(
    database: dict[str, Any], schema: str, messages: list[Message], batch: int, start: Any, done: Any
) -> None:
    """One projection process (one consumer of the group): its partitions' messages, in batches."""

    async def go() -> None:
        settings = Settings(env="test", database=database)
        engine = make_schema_engine(settings.database, schema)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        runner = ProjectionRunner(
            CallProjection(),
            session_factory=sessions,
            dead_letters=NoDeadLetters(),  # type: ignore[arg-type]
            codec=Codec.single_object(),
        )
        async with sessions() as session:  # connect before the clock starts
            await session.execute(text("SELECT 1"))
        start.wait()
        began = time.perf_counter()
        for i in range(0, len(messages), batch):
            await runner.process(messages[i : i + batch])
        done.put((began, time.perf_counter(), runner.applied))
        await engine.dispose()

    asyncio.run(go())


async def run_processes(settings: Settings, messages: Sequence[Message], batch: int, processes: int) -> float:
    """Partitions split over ``processes`` projection processes on one schema, as a consumer group would."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(upgrade_database, settings.database, schema=schema)
    spawn = multiprocessing.get_context("spawn")
    start, done = spawn.Event(), spawn.Queue()
    database = settings.database.model_dump(mode="json")
    shares = [[m for m in messages if m.partition % processes == n] for n in range(processes)]
    children = [
        spawn.Process(target=_one_process, args=(database, schema, share, batch, start, done))
        for share in shares
    ]
    for child in children:
        child.start()
    await asyncio.sleep(3.0)  # let every child import and connect
    start.set()
    results = [await asyncio.to_thread(done.get, True, 600) for _ in children]
    for child in children:
        child.join()
    applied = sum(r[2] for r in results)
    assert applied == len(messages), (applied, len(messages))
    return applied / (max(r[1] for r in results) - min(r[0] for r in results))


async def run_copy(settings: Settings, events: Sequence[calls.CallEvent], batch: int) -> float:
    """COPY of the rows the projection ends with, batch by batch: the write ceiling."""
    engine, sessions = await fresh_sessions(settings)
    folded = [call_batch.fold_batch({}, list(events[i : i + batch])) for i in range(0, len(events), batch)]
    started = time.perf_counter()
    written: set[str] = set()
    for part in folded:
        async with sessions() as session, session.begin():
            rows = [r for r in part.call_rows() if r["call_id"] not in written]
            written |= {r["call_id"] for r in rows}
            await copy_rows(session, "call", list(rows[0]) if rows else [], rows)
            columns = list(part.timeline[0])
            await copy_rows(session, "call_event", columns, part.timeline, json_columns=["payload"])
            for table, side in (
                ("transcript_segment", list(part.transcripts.values())),
                ("recording", list(part.recordings.values())),
            ):
                await copy_rows(session, table, list(side[0]) if side else [], side)
            tools = [t for t in part.tool_calls.values() if "arguments_json" in t]
            await copy_rows(session, "tool_call", list(tools[0]) if tools else [], tools)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return len(events) / elapsed


async def main(args: argparse.Namespace) -> dict[str, Any]:
    pairs = stream(args.calls)
    events, messages = [e for e, _ in pairs], [m for _, m in pairs]
    with (
        tempfile.TemporaryDirectory() as data_dir,
        running_stack(Settings(env="test", data_dir=Path(data_dir)), durable=False) as stack,
    ):
        settings = stack.settings
        results: dict[str, Any] = {"events": len(messages), "batch": args.batch}
        results["batched_events_per_s"] = await run_projection(
            settings, CallProjection(), messages, args.batch
        )
        if args.processes > 1:
            results["processes"] = args.processes
            results["batched_events_per_s_in_processes"] = await run_processes(
                settings, messages, args.batch, args.processes
            )
        small = messages[: args.one_by_one_events]
        results["one_by_one_events"] = len(small)
        results["one_by_one_events_per_s"] = await run_projection(
            settings, OneByOne(CallProjection()), small, args.batch
        )
        results["copy_events_per_s"] = await run_copy(settings, events, args.batch)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000, help="calls of 10 events each")
    parser.add_argument("--batch", type=int, default=1000, help="records per transaction")
    parser.add_argument("--one-by-one-events", type=int, default=10_000)
    parser.add_argument(
        "--processes", type=int, default=2, help="also run the batched path in N processes, partitions split"
    )
    figures = asyncio.run(main(parser.parse_args()))
    print(json.dumps({k: round(v) if isinstance(v, float) else v for k, v in figures.items()}, indent=2))
