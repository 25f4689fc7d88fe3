"""Runs a projection: consume its topics, apply each record and store the offsets in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.backoff import wait_before
from infra.db import is_database_outage
from infra.deadletter import ConsumedRecord, DeadLetterPublisher, RecordDecodeError, decode_record
from infra.kafka import is_transient, make_consumer, stop_consumer
from infra.settings import KafkaSettings
from projections.position import load_checkpoints, load_positions, save_checkpoints, save_positions
from schemas.codec import Codec
from schemas.registry import Record

log = logging.getLogger(__name__)


class UnappliableError(Exception):
    """A well-formed record this projection cannot apply (wrong type for the topic, ...)."""


class Projection(Protocol):
    """A read model: which topics it folds, and how one record changes its rows."""

    name: str
    topics: tuple[str, ...]

    def aggregate_of(self, record: Record) -> tuple[str, int]:
        """(aggregate id, seq) of a record; raises UnappliableError for records it does not take."""
        ...

    async def apply(self, session: AsyncSession, record: Record) -> None: ...

    async def flush(self, session: AsyncSession) -> None:
        """Called once per batch, before commit (batch-level rows such as analytics)."""
        ...


@runtime_checkable
class BatchProjection(Projection, Protocol):
    """A projection that can also apply a whole batch in a few statements (the runner prefers it).

    It must leave exactly the rows that applying the records one by one would, and return the
    records it refuses (by index) instead of raising for them; raising sends the batch down the
    one-by-one path.
    """

    async def apply_batch(
        self, session: AsyncSession, records: Sequence[Record]
    ) -> Sequence[tuple[int, Exception]]: ...


def nul_field(value: object, path: str = "record") -> str | None:
    """The first field of a record (nested records, lists and maps too) holding a NUL, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            found = nul_field(getattr(value, field.name), f"{path}.{field.name}")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            found = nul_field(key, f"{path} key") or nul_field(item, f"{path}[{key!r}]")
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_field(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _is_outage(err: BaseException) -> bool:
    """The broker or the database is away or busy: retry the batch, blame no record."""
    return is_transient(err) or is_database_outage(err)


OUTAGE_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


class ProjectionRunner:
    """One projection's consumer loop; offsets live in `projection_checkpoint`, never in Kafka."""

    def __init__(
        self,
        projection: Projection,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        dead_letters: DeadLetterPublisher,
        codec: Codec,
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.projection = projection
        self._sessions = session_factory
        self._dead_letters = dead_letters
        self._codec = codec
        self._before_commit = before_commit
        self.applied = 0
        self.skipped = 0
        self.dead_lettered = 0
        self.fallbacks = 0  # batches the batch path could not take

    async def process(self, messages: Sequence[ConsumedRecord]) -> None:
        """Apply a batch and move the checkpoints, all in one transaction."""
        name = self.projection.name
        async with self._sessions() as session, session.begin():
            decoded = [(m, await self._decode(m)) for m in messages]
            aggregates = {agg for _, item in decoded if item is not None for agg in [item[1]]}
            positions = await load_positions(session, name, aggregates)
            moved: dict[str, int] = {}
            next_offsets: dict[tuple[str, int], int] = {}
            pending: list[tuple[ConsumedRecord, Record]] = []
            for message, item in decoded:
                next_offsets[(message.topic, message.partition)] = message.offset + 1
                if item is None:
                    continue
                record, aggregate, seq = item
                if seq <= positions.get(aggregate, 0):
                    self.skipped += 1
                    continue
                pending.append((message, record))
                positions[aggregate] = moved[aggregate] = seq
            await self._apply_all(session, pending)
            await self.projection.flush(session)
            await save_positions(session, name, moved)
            await save_checkpoints(session, name, next_offsets)
            if self._before_commit is not None:
                await self._before_commit()

    async def _decode(self, message: ConsumedRecord) -> tuple[Record, str, int] | None:
        try:
            record = decode_record(self._codec, message)
        except RecordDecodeError as err:
            await self._dead_letter(message, "undecodable", err)
            return None
        where = nul_field(record)
        if where is not None:
            # Refused before anything reads it: as an aggregate id it would fail the batch's
            # position lookup, as a tenant or agent the batch's analytics, not just this record.
            error = UnappliableError(f"{where} holds a NUL character, which PostgreSQL text cannot store")
            await self._dead_letter(message, "rejected_by_handler", error)
            return None
        try:
            aggregate, seq = self.projection.aggregate_of(record)
        except UnappliableError as err:
            await self._dead_letter(message, "unknown_type", err)
            return None
        return record, aggregate, seq

    async def _apply_all(self, session: AsyncSession, pending: list[tuple[ConsumedRecord, Record]]) -> None:
        """The batch path when the projection has one; record by record if it has not or if it fails."""
        projection = self.projection
        if isinstance(projection, BatchProjection) and pending:
            try:
                async with session.begin_nested():
                    refused = await projection.apply_batch(session, [r for _, r in pending])
            except Exception as err:  # some record the batch cannot take: find it one by one
                if is_database_outage(err):
                    raise  # the database is away: no record is to blame
                log.info(
                    "%s: batch of %d fell back to single records: %s", self.projection.name, len(pending), err
                )
            else:
                self.applied += len(pending) - len(refused)
                for index, error in refused:
                    await self._dead_letter(pending[index][0], "rejected_by_handler", error)
                return
        for message, record in pending:
            await self._apply_one(session, message, record)

    async def _apply_one(self, session: AsyncSession, message: ConsumedRecord, record: Record) -> None:
        try:
            async with session.begin_nested():
                await self.projection.apply(session, record)
            self.applied += 1
        except UnappliableError as err:
            await self._dead_letter(message, "rejected_by_handler", err)
        except Exception as err:  # a bad record must not stop the projection; it is kept, with why
            if is_database_outage(err):
                raise  # the database is away: no record is to blame
            await self._dead_letter(message, "handler_error", err)

    async def _dead_letter(self, message: ConsumedRecord, reason: str, error: BaseException) -> None:
        # Sent before the batch commits: a crash in between dead-letters the record again (at least once).
        await self._dead_letters.publish(message, reason, error)
        self.dead_lettered += 1

    async def seek_to_checkpoints(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Position the consumer at the stored checkpoints (or the beginning)."""
        keys = [(tp.topic, tp.partition) for tp in assigned]
        async with self._sessions() as session:
            stored = await load_checkpoints(session, self.projection.name, keys)
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)

    async def run(
        self,
        kafka: KafkaSettings,
        *,
        stop: asyncio.Event | None = None,
        group_id: str | None = None,
        max_records: int = 1000,
        linger_s: float = 0.0,
    ) -> None:
        """Consume until ``stop`` is set (or forever); after a small batch, wait ``linger_s``."""
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        consumer = make_consumer(
            kafka,
            group_id=group_id or f"projection.{self.projection.name}",
            fetch_max_wait_ms=kafka.fetch_waits.projections,
        )
        consumer.subscribe(list(self.projection.topics), listener=_SeekOnAssign(self, consumer))
        await consumer.start()
        try:
            while not stop.is_set():
                started = loop.time()
                batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
                messages = [m for records in batches.values() for m in records]
                if messages:
                    try:
                        await self.process(messages)
                    except Exception as err:
                        if not _is_outage(err):
                            raise
                        # The batch rolled back whole; read it again from the checkpoints.
                        await self._rewind_after(err, consumer, stop)
                        continue
                    small = len(messages) < max_records
                    if linger_s > 0 and small and await caught_up(consumer):  # else: a backlog
                        # Let the next batch gather: each costs a transaction, its positions
                        # and checkpoints whatever its size.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), max(0.0, started + linger_s - loop.time()))
        finally:
            await stop_consumer(consumer)

    async def _rewind_after(
        self, err: BaseException, consumer: AIOKafkaConsumer, stop: asyncio.Event
    ) -> None:
        """Wait out a broker or database outage, then seek back to the stored checkpoints."""
        name = self.projection.name
        for attempt in itertools.count():
            wait = wait_before(OUTAGE_BACKOFF_S, attempt)
            log.warning("projection %s: batch not applied (%s); retrying in %.1fs", name, err, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                return
            try:
                await self.seek_to_checkpoints(consumer, consumer.assignment())
                return
            except Exception as again:
                if not _is_outage(again):
                    raise
                err = again


async def caught_up(consumer: AIOKafkaConsumer) -> bool:
    """Every assigned partition read up to the high watermark its last fetch reported.

    A batch smaller than ``max_records`` does not prove it: after downtime, aiokafka can hand
    out one partition's fetch at a time. An unknown watermark counts as not caught up.
    """
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None or highwater > await consumer.position(tp):  # position: local
            return False
    return True


class _SeekOnAssign(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ProjectionRunner, consumer: AIOKafkaConsumer) -> None:
        self._runner = runner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._runner.seek_to_checkpoints(self._consumer, assigned)
