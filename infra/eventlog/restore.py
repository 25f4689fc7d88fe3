"""Republishing an archive into a broker: checked first, then partition by partition in offset order.

Every file is read once before anything is published, so a truncated or corrupt file stops the
restore with its path and byte position and the broker is left untouched. Records go back to
the partition they came from, in offset order, with key, value, headers and timestamp as they
were, so per-key order and key-to-partition placement are kept. A target topic that already
holds records is refused unless ``force``: then the records already there are compared with
the archive's first records of the same partition and, when they are the same (an interrupted
restore), skipped, which makes restoring again idempotent; when they differ, the archive is
appended after them and the summary says so.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic

from infra.eventlog.archive import list_files
from infra.eventlog.archive_file import (
    ArchiveCorruptError,
    ArchivedRecord,
    archive_fs,
    parse_name,
    read_file,
    read_partition_count,
)
from infra.eventlog.reading import end_offsets
from infra.kafka import (
    make_admin,
    make_consumer,
    make_producer,
    start_consumer,
    start_producer,
    stop_consumer,
)
from infra.settings import KafkaSettings
from infra.topics import topic_configs
from schemas.catalog import CATALOG

_WINDOW_BATCHES = 16


class RestoreError(Exception):
    """The restore cannot go ahead; the message says why and what to do."""


class ArchiveInvalidError(RestoreError):
    """One or more archive files are truncated, corrupt or inconsistent."""

    def __init__(self, problems: Sequence[ArchiveCorruptError]) -> None:
        super().__init__(
            "archive is damaged, nothing was published:\n" + "\n".join(f"  {p}" for p in problems)
        )
        self.problems = list(problems)


class TargetNotEmptyError(RestoreError):
    """A target topic already holds records and ``force`` was not given."""


@dataclass
class ArchivePlan:
    """What an archive holds: its files per topic partition in offset order, and record counts."""

    files: dict[TopicPartition, list[str]] = field(default_factory=lambda: defaultdict(list))
    records: dict[TopicPartition, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def topics(self) -> list[str]:
        return sorted({tp.topic for tp in self.files})

    @property
    def total(self) -> int:
        return sum(self.records.values())


@dataclass
class RestoreSummary:
    """What restore did, per topic partition."""

    published: dict[TopicPartition, int] = field(default_factory=dict)
    skipped_present: dict[TopicPartition, int] = field(default_factory=dict)
    created_topics: list[str] = field(default_factory=list)
    appended_after_foreign: list[TopicPartition] = field(default_factory=list)
    """Partitions that held other records than the archive's: restored after them (``force``)."""

    @property
    def total(self) -> int:
        return sum(self.published.values())


def scan_archive(url: str, topics: Sequence[str] | None = None) -> ArchivePlan:
    """Read every file of the archive once; ArchiveInvalidError lists every damaged file."""
    fs, root = archive_fs(url)
    plan = ArchivePlan()
    problems: list[ArchiveCorruptError] = []
    for path in list_files(fs, root):
        topic = path[len(root) :].lstrip("/").split("/")[0]
        name = parse_name(path)
        if name is None or (topics is not None and topic not in topics):
            continue
        plan.files[TopicPartition(topic, name[0])].append(path)
    for topic in {tp.topic for tp in plan.files}:
        try:
            read_partition_count(fs, root, topic)
        except ArchiveCorruptError as exc:
            problems.append(exc)
    for tp, paths in plan.files.items():
        paths.sort(key=lambda p: parse_name(p) or (0, 0))
        try:
            plan.records[tp] = sum(1 for _ in _records(fs, paths, tp))
        except ArchiveCorruptError as exc:
            problems.append(exc)
    if problems:
        raise ArchiveInvalidError(problems)
    return plan


def _records(
    fs: fsspec.AbstractFileSystem, paths: Sequence[str], tp: TopicPartition
) -> Iterator[ArchivedRecord]:
    """The partition's records in offset order; overlapping files (an archiver crash) count once."""
    last = -1
    for path in paths:
        for record in read_file(fs, path):
            if record.topic != tp.topic:
                raise ArchiveCorruptError(
                    path,
                    f"record of topic {record.topic!r} in {tp.topic!r}",
                    byte_offset=None,
                    last_offset=last,
                )
            if record.offset > last:
                last = record.offset
                yield record


async def restore_archive(
    kafka: KafkaSettings,
    url: str,
    *,
    force: bool = False,
    topics: Sequence[str] | None = None,
    on_plan: Callable[[int], None] = lambda total: None,
    on_advance: Callable[[int], None] = lambda n: None,
) -> RestoreSummary:
    """Republish the archive at ``url`` (all its topics, or ``topics``) into the broker."""
    plan = scan_archive(url, topics)
    summary = RestoreSummary()
    if not plan.files:
        return summary
    summary.created_topics = await _ensure_target_topics(kafka, plan, url)
    present = await _records_present(kafka, list(plan.files))
    if not force:
        _refuse_non_empty(present)
    fs, _root = archive_fs(url)
    on_plan(plan.total)
    consumer = make_consumer(kafka, group_id=None)
    producer = make_producer(kafka, linger_ms=5, max_batch_size=1 << 20, max_request_size=8 << 20)
    await start_consumer(consumer)
    try:
        await start_producer(producer)
    except BaseException:
        await stop_consumer(consumer)
        raise
    try:
        for tp in sorted(plan.files):
            skip = 0
            if present[tp]:
                skip = await _already_restored(consumer, tp, present[tp], _records(fs, plan.files[tp], tp))
                summary.skipped_present[tp] = skip
                if skip == 0:
                    summary.appended_after_foreign.append(tp)
            on_advance(skip)
            records = itertools.islice(_records(fs, plan.files[tp], tp), skip, None)
            summary.published[tp] = await _publish(producer, tp, records, on_advance)
    finally:
        await producer.stop()
        await stop_consumer(consumer)
    return summary


def _refuse_non_empty(present: dict[TopicPartition, int]) -> None:
    by_topic: dict[str, int] = defaultdict(int)
    for tp, count in present.items():
        by_topic[tp.topic] += count
    busy = {topic: count for topic, count in by_topic.items() if count}
    if busy:
        listing = ", ".join(f"{topic} ({count} records)" for topic, count in sorted(busy.items()))
        raise TargetNotEmptyError(
            f"target topics are not empty: {listing}. Restoring on top of existing records would "
            "duplicate or interleave history; restore into an empty broker, or pass --force to "
            "resume an interrupted restore (records already there are compared with the archive and "
            "skipped when they match; otherwise the archive is appended after them)"
        )


async def _ensure_target_topics(kafka: KafkaSettings, plan: ArchivePlan, url: str) -> list[str]:
    fs, root = archive_fs(url)
    needed: dict[str, int] = defaultdict(int)
    for tp in plan.files:
        needed[tp.topic] = max(needed[tp.topic], tp.partition + 1)
    for topic in needed:  # partitions the archive has no file of exist too
        needed[topic] = max(needed[topic], read_partition_count(fs, root, topic) or 0)
    specs = {spec.name: spec for spec in CATALOG}
    admin = make_admin(kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in needed if topic not in existing]
        new = []
        for topic in missing:
            spec = specs.get(topic)
            partitions = max(needed[topic], (kafka.partitions_override or spec.partitions) if spec else 1)
            configs = topic_configs(spec) if spec else {}
            new.append(NewTopic(topic, partitions, kafka.replication_factor, topic_configs=configs))
        if new:
            await admin.create_topics(new)
        return sorted(missing)
    finally:
        await admin.close()


async def _records_present(kafka: KafkaSettings, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = make_consumer(kafka, group_id=None)
    await start_consumer(consumer)
    try:
        await consumer._client.force_metadata_update()  # topics may have been created just now
        for topic in {tp.topic for tp in parts}:
            have = consumer.partitions_for_topic(topic) or set()
            short = sorted(tp.partition for tp in parts if tp.topic == topic and tp.partition not in have)
            if short:
                raise RestoreError(f"target topic {topic} lacks partitions {short} that the archive has")
        first = await consumer.beginning_offsets(parts)
        last = await end_offsets(consumer, parts)
        return {tp: last[tp] - first[tp] for tp in parts}
    finally:
        await stop_consumer(consumer)


READ_BACK_STALL_S = 60.0
"""How long reading a partition back may make no progress before the restore gives up."""


async def _already_restored(
    consumer: AIOKafkaConsumer, tp: TopicPartition, count: int, records: Iterator[ArchivedRecord]
) -> int:
    """``count`` if the partition's records are the archive's first ones (an earlier restore), else 0."""
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    seen = 0
    progressed = time.monotonic()
    while seen < count:
        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=min(5000, count - seen))
        if batch.get(tp):
            progressed = time.monotonic()
        elif time.monotonic() - progressed > READ_BACK_STALL_S:
            raise RestoreError(
                f"could not read {tp.topic}[{tp.partition}] back for {READ_BACK_STALL_S:.0f} s "
                f"({seen} of {count} records seen): is the broker reachable?"
            )
        for msg in batch.get(tp, []):
            archived = next(records, None)
            if archived is None:
                return seen  # the whole archive is there, and newer records after it
            if (msg.key, msg.value, tuple(msg.headers or ())) != (
                archived.key,
                archived.value,
                archived.headers,
            ):
                return 0
            seen += 1
    return seen


async def _publish(
    producer: AIOKafkaProducer,
    tp: TopicPartition,
    records: Iterator[ArchivedRecord],
    on_advance: Callable[[int], None],
) -> int:
    """Send in whole batches: aiokafka keeps one request in flight per partition, so order holds."""
    sent = 0
    pending: list[tuple[Any, int]] = []
    batch, in_batch = producer.create_batch(), 0
    for record in records:
        fields = {"timestamp": record.timestamp_ms, "key": record.key, "value": record.value}
        if batch.append(headers=list(record.headers), **fields) is None:  # full: ship it, start another
            pending.append((await producer.send_batch(batch, tp.topic, partition=tp.partition), in_batch))
            batch, in_batch = producer.create_batch(), 0
            if batch.append(headers=list(record.headers), **fields) is None:
                raise RestoreError(f"{tp.topic}[{tp.partition}]: a record larger than a whole batch")
        in_batch += 1
        if len(pending) >= _WINDOW_BATCHES:
            sent += await _settle(pending, on_advance)
    if in_batch:
        pending.append((await producer.send_batch(batch, tp.topic, partition=tp.partition), in_batch))
    sent += await _settle(pending, on_advance)
    return sent


async def _settle(pending: list[tuple[Any, int]], on_advance: Callable[[int], None]) -> int:
    count = 0
    for future, size in pending:
        await future
        on_advance(size)
        count += size
    pending.clear()
    return count
