"""Reading a topic as decoded events: filters, time ranges over partitions, and a JSON shape."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from infra import offset_gaps
from infra.eventlog.schema_registry import RegistrySchemaIds, SchemaRegistryError
from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.settings import KafkaSettings
from schemas.avro_schema import full_name
from schemas.codec import Codec, DecodeError
from schemas.convert import encoder

log = logging.getLogger(__name__)


def codec_for(kafka: KafkaSettings) -> Codec:
    """The codec matching the configured wire format; Confluent ids are asked of the registry.

    SchemaRegistryError for ``confluent`` without a registry URL: only the registry that
    framed the records knows which schema an id stands for.
    """
    if kafka.wire_format == "confluent":
        if not kafka.schema_registry_url:
            raise SchemaRegistryError(
                "VOICE_KAFKA__WIRE_FORMAT=confluent needs VOICE_KAFKA__SCHEMA_REGISTRY_URL: schema ids "
                "are assigned by the registry that framed the records, and only it can say which "
                "schema an id stands for"
            )
        return Codec.confluent(RegistrySchemaIds(kafka.schema_registry_url))
    return Codec.single_object()


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """Which events to keep: by aggregate key, record type name and Kafka timestamp range."""

    call_id: str | None = None
    type_name: str | None = None
    """Short (``CallEnded``) or full (``voice.calls.v1.CallEnded``) record name."""
    since: datetime | None = None
    until: datetime | None = None

    def keeps_key(self, key: bytes | None) -> bool:
        return self.call_id is None or key == self.call_id.encode("utf-8")

    def keeps_type(self, cls: type[Any]) -> bool:
        return self.type_name is None or self.type_name in (cls.__name__, full_name(cls))

    def keeps_time(self, timestamp_ms: int) -> bool:
        if self.since is not None and timestamp_ms < to_ms(self.since):
            return False
        return self.until is None or timestamp_ms < to_ms(self.until)


def to_ms(when: datetime) -> int:
    """Milliseconds since the epoch; naive datetimes are taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodedEvent:
    """One Kafka record of ours, decoded, with where it came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    record: Any

    @property
    def type_name(self) -> str:
        return full_name(type(self.record))

    def avro_fields(self) -> dict[str, Any]:
        """The record as the dict an Avro writer takes (fields of its .avsc)."""
        return encoder(type(self.record))(self.record)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: Kafka coordinates, the record type, and the record's fields."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(),
            "key": _jsonable(self.key),
            "type": self.type_name,
            "event": _jsonable(dataclasses.asdict(self.record)),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def decode(codec: Codec, msg: Any) -> DecodedEvent:
    """Decode an aiokafka ConsumerRecord; DecodeError (with topic/partition/offset) if it is not ours."""
    if msg.value is None:
        raise DecodeError(f"{msg.topic}[{msg.partition}]@{msg.offset}: tombstone (no value)")
    try:
        record = codec.decode(msg.value)
    except DecodeError as exc:
        raise DecodeError(f"{msg.topic}[{msg.partition}]@{msg.offset}: {exc}") from exc
    return DecodedEvent(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        timestamp_ms=msg.timestamp,
        key=msg.key,
        headers=tuple(msg.headers or ()),
        record=record,
    )


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition to read."""

    partition: TopicPartition
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


async def plan_range(
    consumer: AIOKafkaConsumer,
    topic: str,
    since: datetime | None,
    until: datetime | None,
    partitions: Callable[[list[int]], Collection[int]] | None = None,
) -> list[PartitionRange]:
    """The offsets of ``topic`` holding records stamped in ``[since, until)``, as of now.

    ``partitions`` picks, from the topic's partition numbers, the ones to plan (``read_range``);
    the others are not probed.
    """
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise LookupError(f"topic {topic!r} does not exist on the broker")
    chosen = sorted(numbers) if partitions is None else sorted(set(partitions(sorted(numbers))) & numbers)
    parts = [TopicPartition(topic, p) for p in chosen]
    if not parts:
        return []
    first = await consumer.beginning_offsets(parts)
    last = await end_offsets(consumer, parts)
    starts = await _offsets_at(consumer, parts, since, first, last)
    ends = await _offsets_at(consumer, parts, until, last, last)
    return [PartitionRange(tp, max(starts[tp], first[tp]), min(ends[tp], last[tp])) for tp in parts]


async def end_offsets(
    consumer: AIOKafkaConsumer, parts: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """Each partition's end offset, checked against a fetch's high watermark.

    The embedded Tansu broker answers ListOffsets(latest) with the *base* offset of the last
    batch + 1, so after a multi-record batch it under-reports the end. A fetch from just
    before that offset returns the true high watermark. Leaves ``consumer`` assigned to the
    probed partitions; callers assign what they need afterwards.
    """
    first = await consumer.beginning_offsets(parts)
    ends = dict(await consumer.end_offsets(parts))
    pending = {tp for tp in parts if ends[tp] > first[tp]}
    if not pending:
        return ends
    consumer.assign(list(pending))
    for tp in pending:
        consumer.seek(tp, ends[tp] - 1)
    for _ in range(20):
        await consumer.getmany(*pending, timeout_ms=250, max_records=1)
        for tp in list(pending):
            high = consumer.highwater(tp)
            if high is not None:
                ends[tp] = max(ends[tp], high)
                pending.discard(tp)
        if not pending:
            break
    if pending:  # no fetch answered: keep the reported ends, which may fall short of the log
        log.warning(
            "could not confirm the end of %s; using the broker's (possibly low) answer", sorted(pending)
        )
    return ends


async def probed_end_offsets(
    probe: AIOKafkaConsumer, parts: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """``end_offsets`` on a consumer of its own (not started yet), stopped afterwards.

    For callers whose own consumer must not be moved: finding the true end seeks and fetches.
    """
    await start_consumer(probe)
    try:
        return await end_offsets(probe, parts)
    finally:
        await stop_consumer(probe)


async def _offsets_at(
    consumer: AIOKafkaConsumer,
    parts: Sequence[TopicPartition],
    when: datetime | None,
    default: dict[TopicPartition, int],
    last: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    if when is None:
        return dict(default)
    return await offsets_at(consumer, parts, when, last)


async def offsets_at(
    consumer: AIOKafkaConsumer,
    parts: Sequence[TopicPartition],
    when: datetime,
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Each partition's first offset stamped at or after ``when``; its end when there is none.

    The broker's answer is only a hint: Tansu answers an early offset (often 0) for many
    timestamps, and trusting it, or giving up on it, skips records (a restored log carries its
    records' original timestamps). So the hint narrows a binary search over single-record
    reads, on timestamps that rise along the partition as a log's do. Leaves ``consumer``
    assigned to at least ``parts``; callers seek what they read afterwards.
    """
    when_ms = to_ms(when)
    first = await consumer.beginning_offsets(parts)
    found = await consumer.offsets_for_times({tp: when_ms for tp in parts})
    offsets = {}
    for tp in parts:
        hit = found.get(tp)
        hint = None if hit is None else min(max(first[tp], hit.offset), ends[tp])
        offsets[tp] = await _first_stamped_at_or_after(consumer, tp, first[tp], ends[tp], hint, when_ms)
    return offsets


PROBE_FETCHES = 2 + int(offset_gaps.MAX_WAIT_S // 2)
"""Fetches of 2 s a probe makes before it takes "nothing" for the end of the partition."""


async def _first_stamped_at_or_after(
    consumer: AIOKafkaConsumer, tp: TopicPartition, low: int, high: int, hint: int | None, when_ms: int
) -> int:
    """The first offset in [low, high) whose record is stamped at or after ``when_ms``; ``high``
    when none is. Every record before ``low`` is earlier; ``high`` is the answer if nothing is."""
    probe = hint
    while low < high:
        if probe is None or not low <= probe < high:
            probe = (low + high) // 2
        record = await _record_from(consumer, tp, probe)
        if record is None or record[0] >= high or record[1] >= when_ms:
            high = probe  # the first record from here on is late enough (or there is none)
        else:
            low = record[0] + 1  # early, and so is every record before it
        probe = None
    return low


async def _record_from(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> tuple[int, int] | None:
    """(offset, timestamp) of the first record at or after ``offset``; None past the end.

    The first one, not the one at ``offset``: the embedded broker can leave holes (ADR 14).
    """
    assigned = consumer.assignment()
    consumer.assign([*assigned, tp] if tp not in assigned else list(assigned))
    consumer.seek(tp, offset)
    # An empty fetch is not the end: a slow broker, or a hole being waited at. Taken as the end,
    # it would move an --until back and drop records from an export, so ask until a hole's wait
    # is surely over.
    for _ in range(PROBE_FETCHES):
        batch = await consumer.getmany(tp, timeout_ms=2000, max_records=1)
        records = batch.get(tp, [])
        if records:
            return records[0].offset, records[0].timestamp
    return None


def _reraise(exc: DecodeError) -> None:
    raise exc


async def read_range(
    kafka: KafkaSettings,
    topic: str,
    event_filter: EventFilter,
    *,
    on_plan: Callable[[int], None] = lambda total: None,
    on_advance: Callable[[int], None] = lambda n: None,
    on_undecodable: Callable[[DecodeError], None] = _reraise,
    codec: Codec | None = None,
    partitions: Callable[[list[int]], Collection[int]] | None = None,
) -> AsyncIterator[DecodedEvent]:
    """Every event of ``topic`` in the filter's time range (as of the call), filtered, per partition.

    Records that do not decode go to ``on_undecodable`` (which raises unless told otherwise).
    ``codec`` defaults to the configured wire format's; ``partitions`` picks, from the topic's
    partition numbers, the ones to read (a keyed reader needs only its key's): only those are
    planned and read, each up to its end as of the call.
    """
    codec = codec or codec_for(kafka)
    consumer = make_consumer(kafka, group_id=None, max_partition_fetch_bytes=4 << 20)
    await start_consumer(consumer)
    # aiokafka's group-less coordinator task must get to run once, or stopping right away (an
    # unknown topic) raises CancelledError out of consumer.stop().
    await asyncio.sleep(0)
    try:
        planned = await plan_range(consumer, topic, event_filter.since, event_filter.until, partitions)
        ranges = [r for r in planned if r.size]
        on_plan(sum(r.size for r in ranges))
        if not ranges:
            return
        ends = {r.partition: r.end for r in ranges}
        consumer.assign(list(ends))
        for r in ranges:
            consumer.seek(r.partition, r.start)
        while ends:
            batches = await consumer.getmany(*ends, timeout_ms=500, max_records=5000)
            for tp, messages in batches.items():
                for msg in messages:
                    if tp not in ends or msg.offset >= ends[tp]:
                        break
                    on_advance(1)
                    if not (event_filter.keeps_key(msg.key) and event_filter.keeps_time(msg.timestamp)):
                        continue
                    try:
                        event = decode(codec, msg)
                    except DecodeError as exc:
                        on_undecodable(exc)
                        continue
                    if event_filter.keeps_type(type(event.record)):
                        yield event
            for tp in list(ends):
                if await consumer.position(tp) >= ends[tp]:
                    del ends[tp]
                    consumer.pause(tp)
    finally:
        await stop_consumer(consumer)
