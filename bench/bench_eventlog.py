"""Archive and restore throughput beside the raw consume rate of the same topic (issue 8).

    .venv/bin/python bench/bench_eventlog.py [--records 200000]

Starts two embedded Tansu brokers: fills a topic on the first with call events, times a raw
consume of it (the ceiling), the archiver writing it to local Avro files, and the restore of
that archive into the second, empty broker.
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

from infra.embedded import start_broker
from infra.eventlog.archive import Archiver
from infra.eventlog.reading import end_offsets
from infra.eventlog.restore import restore_archive, scan_archive
from infra.kafka import make_admin, make_consumer, make_producer
from infra.settings import ArchiveSettings, KafkaSettings
from schemas.calls import TranscriptSegment
from schemas.codec import Codec
from tests.support.examples import example_record

TOPIC = "voice.calls.events.v1"
PARTITIONS = 3


async def fill(kafka: KafkaSettings, count: int) -> float:
    admin = make_admin(kafka)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    await admin.close()
    codec = Codec.single_object()
    calls = [f"call-{uuid.uuid4().hex}" for _ in range(200)]
    producer = make_producer(kafka, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    started = time.perf_counter()
    futures = []
    for n in range(count):
        call = calls[n % len(calls)]
        record = example_record(TranscriptSegment, n, call_id=call, seq=n // len(calls) + 1)
        futures.append(await producer.send(TOPIC, codec.encode(record), key=call.encode()))
        if len(futures) >= 5000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    await producer.stop()
    return time.perf_counter() - started


async def raw_consume(kafka: KafkaSettings, count: int) -> float:
    consumer = make_consumer(kafka, group_id=None, max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    ends = await end_offsets(consumer, parts)
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    seen = 0
    started = time.perf_counter()
    while seen < sum(ends.values()):
        for messages in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
            seen += len(messages)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    assert seen == count, (seen, count)
    return elapsed


async def archive(kafka: KafkaSettings, root: Path, count: int) -> float:
    done = asyncio.Event()
    archiver = Archiver(
        kafka,
        ArchiveSettings(roll_records=50_000, roll_seconds=2.0),
        str(root),
        topics=[TOPIC],
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        on_file=lambda f: done.set() if archiver.records_written >= count else None,
    )
    started = time.perf_counter()
    task = asyncio.create_task(archiver.run())
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    archiver.stop()
    await task
    return elapsed


def scan(root: Path, count: int) -> float:
    started = time.perf_counter()
    assert scan_archive(str(root)).total == count
    return time.perf_counter() - started


async def restore(kafka: KafkaSettings, root: Path, count: int) -> float:
    started = time.perf_counter()
    summary = await restore_archive(kafka, str(root))
    elapsed = time.perf_counter() - started
    assert summary.total == count, summary.total
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    count = parser.parse_args().records
    with tempfile.TemporaryDirectory() as tmp:
        source = start_broker(Path(tmp) / "source")
        target = start_broker(Path(tmp) / "target")
        try:
            src = KafkaSettings(bootstrap=source.address)
            dst = KafkaSettings(bootstrap=target.address)
            rows = [
                ("produce (batched, acks=all)", asyncio.run(fill(src, count))),
                ("raw consume (ceiling)", asyncio.run(raw_consume(src, count))),
                (
                    "archive (consume + Avro files + fsync + commit)",
                    asyncio.run(archive(src, Path(tmp) / "a", count)),
                ),
                ("archive scan alone (read + verify every file)", scan(Path(tmp) / "a", count)),
                (
                    "restore into an empty broker (scan + publish)",
                    asyncio.run(restore(dst, Path(tmp) / "a", count)),
                ),
            ]
        finally:
            target.stop()
            source.stop()
    print(f"| {count:,} call events, {PARTITIONS} partitions | seconds | records/s |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {count / seconds:,.0f} |")


if __name__ == "__main__":
    main()
