"""Republishing an archive into a broker: checked first, then partition by partition in offset order.

Every file is read once before anything is published, so a truncated or corrupt file stops the
restore with its path and byte position and the broker is left untouched. Records go back to
the partition they came from, in offset order, with key, value, headers and timestamp as they
were, so per-key order and key-to-partition placement are kept. A target topic that already
holds records is refused unless ``force``: then the records already there are compared with
the archive's first records of the same partition and, when they are the same (an interrupted
restore), skipped, which makes restoring again idempotent; when they differ, the archive is
appended after them and the summary says so.

A broker numbers the records it is given one after another, so the archive must hold every
offset of a partition from 0 on: a file missing (a partial copy, a pruned ``date=`` directory)
would bring every later record back at a lower offset, and an archiver writing into the same
archive afterwards would meet the archive's own files at those offsets. Such a gap stops the
restore unless ``allow_gaps``. Files that overlap (an archiver that crashed before committing
wrote the same offsets again) must agree where they overlap; other records at an offset already
read are another log's, and stop the restore too.
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
    TOPIC_LAYOUT,
    ArchiveCorruptError,
    ArchivedRecord,
    archive_fs,
    layout_path,
    parse_name,
    read_file,
    read_partition_count,
    same_content,
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
            "archive is damaged or inconsistent, nothing was published:\n"
            + "\n".join(f"  {p}" for p in problems)
        )
        self.problems = list(problems)


class OverlapConflictError(ArchiveCorruptError):
    """Two files of one partition hold different records at the same offset: two logs' records."""

    def __init__(self, path: str, offset: int, earlier: str | None) -> None:
        there = f"than {earlier} has there" if earlier else "than the files before it (which lack it)"
        Exception.__init__(
            self,
            f"{path}: offset {offset} holds another record {there}; the two files come from "
            "different logs (a broker that started again at offset 0 archived into the same place). "
            "Move the one that is not this archive's aside",
        )
        self.path, self.byte_offset, self.last_offset = path, None, offset


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets of a partition that no archive file holds."""

    tp: TopicPartition
    first: int
    last: int
    before: str | None
    """The file the offsets follow; None when they are the partition's first."""
    after: str

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def describe(self) -> str:
        where = f"between {self.before} and {self.after}" if self.before else f"before {self.after}"
        offsets = f"offsets {self.first}..{self.last}"
        return f"{self.tp.topic}[{self.tp.partition}]: {offsets} are in no file ({where})"


class ArchiveGapError(RestoreError):
    """A partition's files leave offsets out, and ``allow_gaps`` was not given."""

    def __init__(self, gaps: Sequence[Gap]) -> None:
        super().__init__(
            "the archive is missing records, nothing was published:\n"
            + "\n".join(f"  {gap.describe()}" for gap in gaps)
            + "\nA broker numbers what it is given from 0 with no holes, so every record after a gap "
            "would come back at a lower offset than it was archived at, and an archiver writing into "
            "this archive afterwards would meet its files at those offsets. Put the missing files back "
            "(a partial copy? a pruned date= directory?) and restore again, or restore anyway with "
            "`voiceagent archive restore --allow-gaps` (the offsets shift; archive to a new URL after it)"
        )
        self.gaps = list(gaps)


class TargetNotEmptyError(RestoreError):
    """A target topic already holds records and ``force`` was not given."""


class PartitionCountError(RestoreError):
    """A target topic exists with another partition count than the archive's."""


@dataclass
class ArchivePlan:
    """What an archive holds: its files per topic partition in offset order, and record counts."""

    files: dict[TopicPartition, list[str]] = field(default_factory=lambda: defaultdict(list))
    records: dict[TopicPartition, int] = field(default_factory=lambda: defaultdict(int))
    gaps: list[Gap] = field(default_factory=list)
    """Offsets no file holds (restored anyway only with ``allow_gaps``)."""
    layouts: dict[str, int | None] = field(default_factory=dict)
    """Each topic's partition count as archived (``_topic.json``); None in older archives."""

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
    gaps: list[Gap] = field(default_factory=list)
    """Offsets the archive lacked (``allow_gaps``): the records after each came back lower."""

    @property
    def total(self) -> int:
        return sum(self.published.values())


def scan_archive(url: str, topics: Sequence[str] | None = None, *, allow_gaps: bool = False) -> ArchivePlan:
    """Read every file of the archive once; ArchiveInvalidError lists every damaged file and
    conflicting overlap, ArchiveGapError every gap (unless ``allow_gaps``)."""
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
            plan.layouts[topic] = read_partition_count(fs, root, topic)
        except ArchiveCorruptError as exc:
            problems.append(exc)
            continue
        beyond = sorted(
            tp.partition
            for tp in plan.files
            if tp.topic == topic and tp.partition >= (plan.layouts[topic] or 1 << 31)
        )
        if beyond:
            reason = (
                f"says {plan.layouts[topic]} partitions, but the archive has files of partitions {beyond}"
            )
            problems.append(
                ArchiveCorruptError(layout_path(root, topic), reason, byte_offset=None, last_offset=None)
            )
    for tp, paths in plan.files.items():
        paths.sort(key=lambda p: parse_name(p) or (0, 0))
        reader = _PartitionReader(fs, paths, tp)
        try:
            plan.records[tp] = sum(1 for _ in reader)
        except ArchiveCorruptError as exc:
            problems.append(exc)
        plan.gaps += find_gaps(tp, reader.spans)
    if problems:
        raise ArchiveInvalidError(problems)
    if plan.gaps and not allow_gaps:
        raise ArchiveGapError(plan.gaps)
    return plan


def find_gaps(tp: TopicPartition, spans: Sequence[tuple[str, int, int]]) -> list[Gap]:
    """Offsets from 0 on that no file holds, given each file's (path, first, last) in file order."""
    gaps: list[Gap] = []
    end, previous = -1, None
    for path, first, last in spans:
        if first > end + 1:
            gaps.append(Gap(tp, end + 1, first - 1, previous, path))
        if last > end:
            end, previous = last, path
    return gaps


def _records(
    fs: fsspec.AbstractFileSystem, paths: Sequence[str], tp: TopicPartition
) -> Iterator[ArchivedRecord]:
    """The partition's records in offset order; overlapping files (an archiver crash) count once."""
    return iter(_PartitionReader(fs, paths, tp))


class _PartitionReader:
    """Reads a partition's files (sorted by first offset) once per offset; records ``spans``."""

    def __init__(self, fs: fsspec.AbstractFileSystem, paths: Sequence[str], tp: TopicPartition) -> None:
        self._fs, self._paths, self._tp = fs, paths, tp
        self.spans: list[tuple[str, int, int]] = []
        """(path, first offset, last offset) of each file read whole."""

    def __iter__(self) -> Iterator[ArchivedRecord]:
        last = -1
        for path in self._paths:
            start = (parse_name(path) or (self._tp.partition, 0))[1]
            # Offsets read already are compared, not dropped: a crash re-archives the same
            # records (fine), a broker that started again at 0 archives others (not fine).
            earlier = self._earlier(start, last) if start <= last else {}
            first_here = last_here = None
            for record in read_file(self._fs, path):
                if record.topic != self._tp.topic:
                    reason = f"record of topic {record.topic!r} in {self._tp.topic!r}"
                    raise ArchiveCorruptError(path, reason, byte_offset=None, last_offset=last)
                first_here = record.offset if first_here is None else first_here
                last_here = record.offset
                if record.offset > last:
                    last = record.offset
                    yield record
                    continue
                kept = earlier.get(record.offset)
                if kept is None or not same_content(kept[1], record):
                    raise OverlapConflictError(path, record.offset, kept[0] if kept else None)
            if first_here is not None and last_here is not None:  # read_file refuses an empty file
                self.spans.append((path, first_here, last_here))

    def _earlier(self, start: int, end: int) -> dict[int, tuple[str, ArchivedRecord]]:
        """The records already read at offsets [start, end], each with its file (rare: re-read)."""
        held: dict[int, tuple[str, ArchivedRecord]] = {}
        for path, first, last in self.spans:
            if first <= end and last >= start:
                for record in read_file(self._fs, path):
                    if start <= record.offset <= end:
                        held.setdefault(record.offset, (path, record))
        return held


async def restore_archive(
    kafka: KafkaSettings,
    url: str,
    *,
    force: bool = False,
    allow_gaps: bool = False,
    topics: Sequence[str] | None = None,
    on_plan: Callable[[int], None] = lambda total: None,
    on_advance: Callable[[int], None] = lambda n: None,
) -> RestoreSummary:
    """Republish the archive at ``url`` (all its topics, or ``topics``) into the broker."""
    plan = scan_archive(url, topics, allow_gaps=allow_gaps)
    summary = RestoreSummary(gaps=plan.gaps)
    if not plan.files:
        return summary
    summary.created_topics = await _ensure_target_topics(kafka, plan)
    present = await _records_present(kafka, plan)
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


async def _ensure_target_topics(kafka: KafkaSettings, plan: ArchivePlan) -> list[str]:
    specs = {spec.name: spec for spec in CATALOG}
    admin = make_admin(kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in plan.topics if topic not in existing]
        new = []
        for topic in missing:
            spec = specs.get(topic)
            catalog = (kafka.partitions_override or spec.partitions) if spec else 1
            partitions = new_topic_partitions(
                plan.layouts.get(topic), _archived_partitions(plan, topic), catalog
            )
            configs = topic_configs(spec) if spec else {}
            new.append(NewTopic(topic, partitions, kafka.replication_factor, topic_configs=configs))
        if new:
            await admin.create_topics(new)
        return sorted(missing)
    finally:
        await admin.close()


def new_topic_partitions(layout: int | None, archived: Sequence[int], catalog: int) -> int:
    """How many partitions a restore creates a topic with: as archived, when the archive says."""
    if layout is not None:  # keys must hash to the partitions their records go back to
        return layout
    return max(catalog, max(archived, default=-1) + 1)  # an archive from before _topic.json


def partition_count_problem(topic: str, have: int, layout: int | None, archived: Sequence[int]) -> str | None:
    """Why an existing target topic cannot take the archive's partitions, or None."""
    if layout is not None and have != layout:
        return (
            f"target topic {topic} has {have} partitions, but the archive's {TOPIC_LAYOUT} says it had "
            f"{layout}: a key's partition follows from the count, so its restored records and its new "
            "ones would be on different partitions (and a replay could differ from what happened "
            "live). Restore into a broker without the topic (the restore creates it with the "
            f"archive's count), or recreate it with {layout} partitions"
        )
    short = sorted(p for p in archived if p >= have)
    return f"target topic {topic} lacks partitions {short} that the archive has" if short else None


def _archived_partitions(plan: ArchivePlan, topic: str) -> list[int]:
    return sorted(tp.partition for tp in plan.files if tp.topic == topic)


async def _records_present(kafka: KafkaSettings, plan: ArchivePlan) -> dict[TopicPartition, int]:
    parts = list(plan.files)
    consumer = make_consumer(kafka, group_id=None)
    await start_consumer(consumer)
    try:
        await consumer._client.force_metadata_update()  # topics may have been created just now
        problems = [
            partition_count_problem(
                topic,
                len(consumer.partitions_for_topic(topic) or ()),
                plan.layouts.get(topic),
                _archived_partitions(plan, topic),
            )
            for topic in plan.topics
        ]
        if any(problems):
            raise PartitionCountError("; ".join(p for p in problems if p))
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
