"""The archiver: a consumer (group ``voice-archiver``) that copies every event topic into Avro files.

Records are buffered per partition and written as one file when the buffer reaches
``roll_records``, is ``roll_seconds`` old, or the next record falls on another UTC date. The
group's offset for a partition moves only after its file is durably written, so a crash
re-reads at most the unwritten buffer: at-least-once, and a file rewritten after a crash has
the same name (it starts at the same offset) and the same first records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import fsspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from infra.eventlog.archive_file import (
    ArchiveConflictError,
    ArchivedRecord,
    archive_fs,
    compare_file,
    date_of,
    encode_file,
    file_path,
    files_meeting,
    layout_bytes,
    layout_path,
    parse_name,
    write_durably,
)
from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.settings import ArchiveSettings, KafkaSettings
from schemas.avro_schema import full_name
from schemas.catalog import CATALOG
from schemas.codec import Codec, DecodeError

log = logging.getLogger(__name__)

ARCHIVER_GROUP = "voice-archiver"


def catalog_topics() -> list[str]:
    """Every topic of the contract (events, inputs, commands and dead letters)."""
    return [spec.name for spec in CATALOG]


@dataclass
class _Buffer:
    records: list[ArchivedRecord] = field(default_factory=list)
    opened_at: float = 0.0


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A file the archiver closed durably, and the offsets it holds."""

    path: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    records: int


_Files = dict[str, tuple[int, int | None]]
"""A partition's archive files: each one's first offset, and its last once read or written."""


class _DropOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Uncommitted buffers of partitions we lose are dropped: their new owner re-reads them.

    So is what we knew of their files: the new owner may write more before they come back.
    """

    def __init__(self, buffers: dict[TopicPartition, _Buffer], files: dict[TopicPartition, _Files]) -> None:
        self._buffers, self._files = buffers, files

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        for tp in revoked:
            self._buffers.pop(tp, None)
            self._files.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        return None


class Archiver:
    """Copies topics into archive files; ``run`` until ``stop()``, then flushes what it holds."""

    def __init__(
        self,
        kafka: KafkaSettings,
        archive: ArchiveSettings,
        url: str,
        *,
        topics: Sequence[str] | None = None,
        group_id: str = ARCHIVER_GROUP,
        on_file: Callable[[WrittenFile], None] = lambda f: None,
    ) -> None:
        self._kafka, self._settings = kafka, archive
        self._fs, self._root = archive_fs(url)
        self._topics = list(topics or catalog_topics())
        self._group_id = group_id
        self._on_file = on_file
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self._described: set[str] = set()
        self._files: dict[TopicPartition, _Files] = {}
        self._codec = Codec.single_object()
        self._stopping = asyncio.Event()
        self.files_written = 0
        self.records_written = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = make_consumer(
            self._kafka,
            group_id=self._group_id,
            max_partition_fetch_bytes=4 << 20,
            fetch_max_wait_ms=self._kafka.fetch_waits.archiver,
        )
        consumer.subscribe(self._topics, listener=_DropOnRevoke(self._buffers, self._files))
        await start_consumer(consumer)
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
                for tp, messages in batches.items():
                    for msg in messages:
                        await self._add(consumer, tp, msg)
                await self._roll_due(consumer, final=False)
            await self._roll_due(consumer, final=True)
        finally:
            await stop_consumer(consumer)

    async def _add(self, consumer: AIOKafkaConsumer, tp: TopicPartition, msg: ConsumerRecord) -> None:
        record = self._archived(msg)
        buffer = self._buffers.setdefault(tp, _Buffer())
        if buffer.records and date_of(buffer.records[0].timestamp_ms) != date_of(record.timestamp_ms):
            await self._flush(consumer, tp)
            buffer = self._buffers.setdefault(tp, _Buffer())
        if not buffer.records:
            buffer.opened_at = time.monotonic()
        buffer.records.append(record)
        if len(buffer.records) >= self._settings.roll_records:
            await self._flush(consumer, tp)

    async def _roll_due(self, consumer: AIOKafkaConsumer, *, final: bool) -> None:
        now = time.monotonic()
        for tp, buffer in list(self._buffers.items()):
            if buffer.records and (final or now - buffer.opened_at >= self._settings.roll_seconds):
                await self._flush(consumer, tp)

    def _clash(self, tp: TopicPartition, path: str, records: list[ArchivedRecord]) -> tuple[str, int] | None:
        """A file already holding other records at these offsets, and the first such offset.

        Every file is compared with each archive file, of any day, whose offsets may meet its
        own: a broker whose offsets start again at 0 would write beside the old files (another
        day's, or one starting at another offset), and restore would refuse the archive. The
        partition's files are listed once a run; one known to end before these is not read again.
        """
        known = self._files_of(tp)
        candidates = files_meeting(known, records[0].offset, records[-1].offset)
        candidates += [] if path in candidates else [path]
        for candidate in candidates:
            offset, end = compare_file(self._fs, candidate, records)
            if offset is not None:
                return candidate, offset
            if candidate in known:  # a damaged file is never compared again: restore reports it
                known[candidate] = (known[candidate][0], -1 if end is None else end)
        return None

    def _files_of(self, tp: TopicPartition) -> _Files:
        """The partition's archive files, listed at its first file of a run and kept up to date."""
        known = self._files.get(tp)
        if known is None:
            listed = self._fs.glob(f"{self._root}/{tp.topic}/date=*/part-{tp.partition}-*.avro")
            names = ((str(p), parse_name(str(p))) for p in listed)
            known = {p: (name[1], None) for p, name in names if name is not None and name[0] == tp.partition}
            self._files[tp] = known
        return known

    async def _flush(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        buffer = self._buffers.pop(tp)
        first, last = buffer.records[0], buffer.records[-1]
        path = file_path(self._root, tp.topic, tp.partition, first.offset, first.timestamp_ms)
        data = encode_file(buffer.records)
        if tp.topic not in self._described:
            # Restore must recreate every partition, also those with nothing archived: a topic
            # with fewer partitions would send new records of a key to another partition.
            count = len(consumer.partitions_for_topic(tp.topic) or ()) or tp.partition + 1
            layout = layout_bytes(tp.topic, count)
            await asyncio.to_thread(write_durably, self._fs, layout_path(self._root, tp.topic), layout)
            self._described.add(tp.topic)
        clash = await asyncio.to_thread(self._clash, tp, path, buffer.records)
        if clash is not None:  # os.replace would have lost the archived events silently
            raise ArchiveConflictError(*clash)
        await asyncio.to_thread(write_durably, self._fs, path, data)
        self._files_of(tp)[path] = (first.offset, last.offset)
        # Only now is it safe to move the group past these records.
        try:
            await consumer.commit({tp: OffsetAndMetadata(last.offset + 1, "")})
        except KafkaError as err:
            # A rebalance or a broker that went away: the file is written, and its records are
            # archived again (into the same file name) by whoever resumes from the older offset.
            log.warning("archived %s but could not commit past it (%s)", path, err)
        written = WrittenFile(path, tp.topic, tp.partition, first.offset, last.offset, len(buffer.records))
        self.files_written += 1
        self.records_written += written.records
        log.info("archived %s (%d records)", path, written.records)
        self._on_file(written)

    def _archived(self, msg: ConsumerRecord) -> ArchivedRecord:
        value: bytes | None = msg.value
        record_type = None
        if value is not None:
            try:
                record_type = full_name(self._codec.record_type(value))
            except DecodeError:
                record_type = None  # archived all the same: the archive keeps what the log has
        return ArchivedRecord(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            timestamp_ms=msg.timestamp,
            timestamp_type=msg.timestamp_type,
            key=msg.key,
            value=value,
            headers=tuple(msg.headers or ()),
            record_type=record_type,
        )


def list_files(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    """Every archive file under ``root`` (any topic, any date)."""
    return sorted(str(p) for p in fs.glob(f"{root}/*/date=*/part-*.avro"))
