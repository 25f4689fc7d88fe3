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
from infra.kafka import is_transient, make_consumer, start_consumer, stop_consumer
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

    def aggregate_of(self, record: Record) -> tuple[str, int] | None:
        """(aggregate id, seq) of a record; None to read past it; UnappliableError if it cannot take it."""
        ...

    async def apply(self, session: AsyncSession, record: Record) -> None: ...

    async def flush(self, session: AsyncSession) -> None:
        """Called once per batch, before commit (batch-level rows such as analytics)."""
        ...


@runtime_checkable
class BatchProjection(Projection, Protocol):
    """A projection that can also apply a whole batch in a few statements (the runner prefers it).

    It must leave exactly the rows that applying the records one by one would, and return the
    records it refuses (by index) instead of raising for them. Refusing or raising sends the
    batch down the one-by-one path, which finds and dead-letters the culprits.
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

# Longest aggregate, tenant or agent id a projection stores. PostgreSQL refuses a B-tree index
# row over ~2.7 KB, and these ids are keys; 512 characters stay under it in any UTF-8.
MAX_ID_CHARS = 512

MAX_AGGREGATE_CHARS = MAX_ID_CHARS + 32
"""Aggregate ids may be an id with a prefix ("dialer:", "summary-failed:"): an id that passes
the id check must pass the aggregate check too (still under the index limit in any UTF-8)."""

_Decoded = tuple[Record, str, int]  # the record, its aggregate id, its seq


class _BatchRefusedError(Exception):
    """The batch path refused some records: redo the batch one by one so positions stay exact."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} record(s) refused")


def unstorable(record: Record) -> str | None:
    """Why PostgreSQL could not store this record's keys, or None."""
    where = nul_field(record)
    if where is not None:
        return f"{where} holds a NUL character, which PostgreSQL text cannot store"
    for field in ("tenant_id", "agent_id"):
        value = getattr(record, field, None)
        if isinstance(value, str) and len(value) > MAX_ID_CHARS:
            return f"record.{field} is longer than {MAX_ID_CHARS} characters"
    return None


def _new_records(
    items: list[tuple[ConsumedRecord, _Decoded]], positions: dict[str, int]
) -> tuple[list[tuple[ConsumedRecord, Record]], dict[str, int]]:
    """The records past their aggregate's position (repeats in the batch once), and the new positions."""
    seen = dict(positions)
    pending: list[tuple[ConsumedRecord, Record]] = []
    moved: dict[str, int] = {}
    for message, (record, aggregate, seq) in items:
        if seq <= seen.get(aggregate, 0):
            continue
        pending.append((message, record))
        seen[aggregate] = moved[aggregate] = seq
    return pending, moved


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
            items = [(m, item) for m, item in decoded if item is not None]
            positions = await load_positions(session, name, {aggregate for _, (_, aggregate, _) in items})
            moved = await self._apply_all(session, items, positions)
            await self.projection.flush(session)
            await save_positions(session, name, moved)
            # Messages come in offset order per partition: the last one names the next offset.
            await save_checkpoints(session, name, {(m.topic, m.partition): m.offset + 1 for m in messages})
            if self._before_commit is not None:
                await self._before_commit()

    async def _decode(self, message: ConsumedRecord) -> _Decoded | None:
        try:
            record = decode_record(self._codec, message)
        except RecordDecodeError as err:
            await self._dead_letter(message, "undecodable", err)
            return None
        problem = unstorable(record)
        if problem is not None:
            # Refused before anything reads it: as an aggregate id it would fail the batch's
            # position lookup, as a tenant or agent the batch's analytics, not just this record.
            await self._dead_letter(message, "rejected_by_handler", UnappliableError(problem))
            return None
        try:
            taken = self.projection.aggregate_of(record)
        except UnappliableError as err:
            await self._dead_letter(message, "unknown_type", err)
            return None
        if taken is None:
            return None  # a record this projection reads past, with no position to keep
        aggregate, seq = taken
        if seq < 1 or len(aggregate) > MAX_AGGREGATE_CHARS:
            reason = (
                f"seq {seq} is not a position (seqs start at 1)"
                if seq < 1
                else "its aggregate id is too long"
            )
            await self._dead_letter(message, "rejected_by_handler", UnappliableError(reason))
            return None
        return record, aggregate, seq

    async def _apply_all(
        self, session: AsyncSession, items: list[tuple[ConsumedRecord, _Decoded]], positions: dict[str, int]
    ) -> dict[str, int]:
        """Apply what is new, by the batch path when the projection has one; the positions applied.

        A position moves only for a record that was applied: a refused record (another tenant's
        copy of a call's seq, a seq out of range) must not make the aggregate's real events
        look applied. A batch with any refusal is redone record by record for that reason.
        """
        projection = self.projection
        if isinstance(projection, BatchProjection) and items:
            pending, moved = _new_records(items, positions)
            if not pending:
                self.skipped += len(items)
                return {}
            try:
                async with session.begin_nested():
                    refused = await projection.apply_batch(session, [record for _, record in pending])
                    if refused:
                        raise _BatchRefusedError(len(refused))  # rolls the savepoint back
            except Exception as err:  # some record the batch cannot take: find it one by one
                if is_database_outage(err):
                    raise  # the database is away: no record is to blame
                self.fallbacks += 1
                log.info(
                    "%s: batch of %d fell back to single records: %s", projection.name, len(pending), err
                )
            else:
                self.applied += len(pending)
                self.skipped += len(items) - len(pending)
                return moved
        moved = {}
        for message, (record, aggregate, seq) in items:
            if seq <= positions.get(aggregate, 0):
                self.skipped += 1
                continue
            if await self._apply_one(session, message, record):
                positions[aggregate] = moved[aggregate] = seq
        return moved

    async def _apply_one(self, session: AsyncSession, message: ConsumedRecord, record: Record) -> bool:
        """Apply one record in its own savepoint; False (and dead-lettered) if it was refused."""
        try:
            async with session.begin_nested():
                await self.projection.apply(session, record)
        except UnappliableError as err:
            await self._dead_letter(message, "rejected_by_handler", err)
            return False
        except Exception as err:  # a bad record must not stop the projection; it is kept, with why
            if is_database_outage(err):
                raise  # the database is away: no record is to blame
            await self._dead_letter(message, "handler_error", err)
            return False
        self.applied += 1
        return True

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
        await start_consumer(consumer)
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
