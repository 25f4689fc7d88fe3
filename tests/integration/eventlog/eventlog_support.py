"""Helpers for the event-log integration tests: produce examples, read a topic whole."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import TopicPartition

from infra.eventlog.reading import end_offsets
from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings
from schemas.calls import CallEnded, CallReceived, TranscriptSegment
from schemas.codec import Codec
from tests.support.examples import example_record

CODEC = Codec.single_object()
Row = tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...], int]


def call_events(call_id: str, count: int) -> list[Any]:
    """``count`` events of one call, seq 1..count: CallReceived, TranscriptSegments, CallEnded."""

    def kind(seq: int) -> type[Any]:
        return CallReceived if seq == 1 else CallEnded if seq == count else TranscriptSegment

    return [example_record(kind(seq), seq, call_id=call_id, seq=seq) for seq in range(1, count + 1)]


async def produce(
    kafka: KafkaSettings, topic: str, records: list[Any], *, headers: bool = False, batched: bool = False
) -> None:
    """Send ``records`` keyed by call id; ``batched`` lets the producer put many in one batch."""
    producer = make_producer(kafka, linger_ms=20 if batched else 1)
    await producer.start()
    try:
        futures = []
        for record in records:
            extra = [("traceparent", f"00-{uuid.uuid4().hex}-01".encode())] if headers else None
            future = await producer.send(
                topic, CODEC.encode(record), key=record.call_id.encode(), headers=extra
            )
            if batched:
                futures.append(future)
            else:
                await future
        for future in futures:
            await future
    finally:
        await producer.stop()


async def read_all(kafka: KafkaSettings, topic: str) -> dict[int, list[Row]]:
    """Every record of ``topic`` per partition: (offset, key, value, headers, timestamp)."""
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await end_offsets(consumer, parts)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        rows: dict[int, list[Row]] = {tp.partition: [] for tp in parts}

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in parts])

        async def loop() -> None:
            while await behind():
                for tp, messages in (await consumer.getmany(timeout_ms=300)).items():
                    rows[tp.partition].extend(
                        (m.offset, m.key, m.value, tuple(m.headers or ()), m.timestamp) for m in messages
                    )

        await asyncio.wait_for(loop(), 30)
        return rows
    finally:
        await consumer.stop()
