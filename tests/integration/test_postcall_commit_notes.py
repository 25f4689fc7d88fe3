"""The post-call runner on the real broker: how far a partition was read is kept beside its commit."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.settings import Settings
from streams.call_events_runner import CallEventsRunner, _ResetOnRebalance
from tests.integration.helpers import fresh_topic


def _runner(settings: Settings, group: str) -> CallEventsRunner:
    return CallEventsRunner(
        settings,
        group_id=group,
        on_agent=lambda _: None,
        on_call=lambda _: [],
        on_forget=lambda _: None,
        fetch_max_wait_ms=50,
    )


async def _read(settings: Settings, runner: CallEventsRunner, topic: str, group: str, count: int) -> int:
    """``run``'s reading loop on its two consumers until ``count`` records; the first offset read."""
    calls = make_consumer(settings.kafka, group_id=group, fetch_max_wait_ms=50)
    notes = make_consumer(settings.kafka, group_id=f"{group}.read", fetch_max_wait_ms=50)
    calls.subscribe([topic], listener=_ResetOnRebalance(runner))
    await notes.start()
    await calls.start()
    offsets: list[int] = []
    try:
        async with asyncio.timeout(30):
            while len(offsets) < count:
                for tp, messages in (await calls.getmany(timeout_ms=200, max_records=1)).items():
                    assert await runner._resume(notes, tp, asyncio.Event())
                    for message in messages:
                        runner._book.read(tp, message.offset)
                        offsets.append(message.offset)
                await runner._commit(calls, notes)
    finally:
        await calls.stop()
        await notes.stop()
    return offsets[0]


async def test_a_restarted_runner_knows_how_far_its_predecessor_had_read(settings: Settings) -> None:
    # Without it, the ends it reads again of calls started before the commit would look unseen.
    topic = await fresh_topic(settings.kafka, "postcall-notes")
    tp, group = TopicPartition(topic, 0), f"notes-{uuid.uuid4().hex[:6]}"
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for _ in range(6):
            await producer.send_and_wait(topic, b"x", key=b"k")
    finally:
        await producer.stop()
    first = _runner(settings, group)
    first._book.started(tp, 2)  # a job of the event at 2 is still running when it stops
    assert await _read(settings, first, topic, group, 6) == 0
    second = _runner(settings, group)
    assert await _read(settings, second, topic, group, 2) == 2
    assert second._book.handled(tp) == 6  # read to 4 itself, to 6 before
    consumer: AIOKafkaConsumer = make_consumer(settings.kafka, group_id=group)
    await consumer.start()
    try:
        assert await consumer.committed(tp) == 4
    finally:
        await consumer.stop()
