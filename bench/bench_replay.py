"""`voiceagent replay` throughput beside the raw consume rate of the same topic (issue 8; not a test).

    .venv/bin/python bench/bench_replay.py [--calls 20000] [--batch 2000] [--jobs 1]

Starts the embedded stack (Tansu + PostgreSQL, fsync off), fills a topic laid out as the
catalog's call events (12 partitions) with realistic calls (10 events each,
tests.support.call_stream), then times: a raw consume of the topic (the ceiling), the replay of
the calls projection into a fresh schema (consume, decode, fold, rows + checkpoints per
transaction: `projections.rebuild.run_replay`, its partitions split across ``--jobs``
processes), and the verification pass against the log (`projections.verification`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, when run as a script

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from infra.eventlog.reading import end_offsets
from infra.kafka import make_admin, make_consumer, make_producer
from infra.settings import KafkaSettings, Settings
from infra.stack import running_stack
from projections.database import make_schema_engine
from projections.replay_fold import ReplayRequest
from projections.verification import count_log, verify
from schemas.catalog import CALL_EVENTS
from schemas.codec import Codec
from tests.support.call_stream import T0, call_events
from voiceagent.replay import replay, verified_tables

PARTITIONS = CALL_EVENTS.partitions  # the catalog's layout (12): what a replay meets in production


async def fill(kafka: KafkaSettings, topic: str, calls: int) -> tuple[int, float]:
    admin = make_admin(kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    codec = Codec.single_object()
    producer = make_producer(kafka, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    started, sent, futures = time.perf_counter(), 0, []
    agents = [f"agent-{n}" for n in range(40)]
    for n in range(calls):
        call_id = f"call-{uuid.uuid4().hex}"
        start = T0.replace(hour=n % 24, minute=n % 60)
        for event in call_events(f"tenant-{n % 4}", call_id, agents[n % 40], start=start, talk_s=20 + n % 90):
            futures.append(await producer.send(topic, codec.encode(event), key=call_id.encode()))
            sent += 1
        if len(futures) >= 5000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    await producer.stop()
    return sent, time.perf_counter() - started


async def raw_consume(kafka: KafkaSettings, topic: str, count: int) -> float:
    consumer = make_consumer(kafka, group_id=None, max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    ends = await end_offsets(consumer, parts)
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    seen, started = 0, time.perf_counter()
    while seen < sum(ends.values()):
        for messages in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
            seen += len(messages)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    assert seen == count, (seen, count)
    return elapsed


async def bench(settings: Settings, calls: int, batch: int, jobs: int) -> list[tuple[str, int, float]]:
    topic = f"bench.replay.{uuid.uuid4().hex[:6]}"
    count, produced = await fill(settings.kafka, topic, calls)
    rows = [("produce (batched, acks=all; filling the source)", count, produced)]
    rows.append(
        ("**raw consume of the topic (ceiling)**", count, await raw_consume(settings.kafka, topic, count))
    )
    request = ReplayRequest(
        schema=f"bench_{uuid.uuid4().hex[:8]}",
        projections=("calls",),
        topics={"calls": topic},
        max_records=batch,
        jobs=jobs,
    )
    started = time.perf_counter()
    outcome = await replay(settings, request, check=False)
    rows.append(
        (
            f"**replay calls into a fresh schema** ({batch} records per transaction, {jobs} jobs)",
            count,
            time.perf_counter() - started,
        )
    )
    assert outcome.progress.applied == count, outcome.progress
    started = time.perf_counter()
    ranges = {tp: (s, outcome.progress.reached[tp]) for tp, s in outcome.progress.origin.items()}
    counts = await count_log(settings.kafka, ranges)
    engine = make_schema_engine(settings.database)
    verdict = await verify(engine, request.schema, verified_tables(("calls",)), counts)
    await engine.dispose()
    assert verdict.problems == [], verdict.problems
    rows.append(
        ("verify: decode-only pass over the log + table checksums", count, time.perf_counter() - started)
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=1, help="replay processes (voiceagent replay --jobs)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as data_dir,
        running_stack(Settings(env="test", data_dir=Path(data_dir)), durable=False) as stack,
    ):
        rows = asyncio.run(bench(stack.settings, args.calls, args.batch, args.jobs))
    print(f"| {rows[0][1]:,} call events, {PARTITIONS} partitions | seconds | events/s |")
    print("|---|---:|---:|")
    for name, count, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {count / seconds:,.0f} |")


if __name__ == "__main__":
    main()
