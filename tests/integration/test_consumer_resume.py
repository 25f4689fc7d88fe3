"""A consumer group restarted mid-stream resumes from its committed offsets."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer

from infra.kafka import make_consumer, make_producer
from infra.settings import Settings
from tests.integration.helpers import drain, fresh_topic


async def _read_and_commit(consumer: AIOKafkaConsumer, count: int) -> list[bytes]:
    """Process exactly `count` records, committing after each (what a careful consumer does)."""
    taken: list[bytes] = []
    while len(taken) < count:
        message = await consumer.getone()
        assert message.value is not None
        taken.append(message.value)
        await consumer.commit()
    return taken


async def test_restarted_group_resumes_without_loss_or_repeats(settings: Settings) -> None:
    topic = await fresh_topic(settings.kafka, "resume", partitions=2)
    group = f"resume-{uuid.uuid4().hex[:6]}"
    values = [f"record-{i}".encode() for i in range(60)]
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send_and_wait(topic, value, key=str(i % 7).encode())
    finally:
        await producer.stop()

    first = make_consumer(settings.kafka, topic, group_id=group, max_poll_records=5)
    await first.start()
    try:
        before = await _read_and_commit(first, 25)
    finally:
        await first.stop()

    second = make_consumer(settings.kafka, topic, group_id=group)
    await second.start()
    try:
        after = await drain(second, lambda seen: len(seen) >= len(values) - len(before))
        await second.commit()
    finally:
        await second.stop()

    resumed = [m.value for m in after]
    assert not set(before) & set(resumed), "records committed before the restart came back"
    assert sorted(before + resumed) == sorted(values)  # type: ignore[type-var]
