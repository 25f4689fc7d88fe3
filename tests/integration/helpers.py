"""Small helpers for integration tests over the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.structs import ConsumerRecord

from infra.eventlog.reading import end_offsets
from infra.kafka import make_admin, make_consumer
from infra.settings import KafkaSettings


async def fresh_topic(kafka: KafkaSettings, prefix: str, partitions: int = 1) -> str:
    """Create a topic no other test uses."""
    name = f"test.{prefix}.{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, name, partitions=partitions)
    return name


async def create_topic(kafka: KafkaSettings, name: str, *, partitions: int = 1) -> None:
    """Create the topic ``name`` (on a broker of the test's own, say)."""
    admin = make_admin(kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def drain(
    consumer: AIOKafkaConsumer,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout_s: float = 20.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Consume until the predicate holds over everything read so far, or fail on timeout."""
    seen: list[ConsumerRecord[bytes, bytes]] = []

    async def loop() -> None:
        while not until(seen):
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                seen.extend(records)

    await asyncio.wait_for(loop(), timeout_s)
    return seen


async def start_group_at_end(kafka: KafkaSettings, group_id: str, topic: str) -> None:
    """Commit a new consumer group's offsets at the topic's current end.

    Tests share the catalog topics of one broker for the whole session, and the platform's
    workers start a group that has no offsets at the earliest record. A worker started late in
    the suite would otherwise replay every earlier test's calls before reaching its own.
    """
    probe = make_consumer(kafka, group_id=None)
    await probe.start()
    try:
        parts = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic) or ()]
        assert parts, f"topic {topic} has no partitions"
        ends = await end_offsets(probe, parts)
    finally:
        await probe.stop()
    group = make_consumer(kafka, group_id=group_id)
    await group.start()
    try:
        group.assign(parts)
        await group.commit({tp: ends[tp] for tp in parts})
    finally:
        await group.stop()
