"""Small helpers for integration tests over the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import NewTopic
from aiokafka.structs import ConsumerRecord

from infra.kafka import make_admin
from infra.settings import KafkaSettings


async def fresh_topic(kafka: KafkaSettings, prefix: str, partitions: int = 1) -> str:
    """Create a topic no other test uses."""
    name = f"test.{prefix}.{uuid.uuid4().hex[:8]}"
    admin = make_admin(kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


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
