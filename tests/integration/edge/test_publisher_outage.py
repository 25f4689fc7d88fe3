"""The edge's facts survive a broker that goes away: queued, re-sent, and delivered in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic

from edge.metrics import EdgeMetrics
from edge.publisher import KafkaFactPublisher
from infra.embedded import EmbeddedService, start_broker
from infra.kafka import make_admin, make_consumer, make_producer, stop_consumer
from infra.process import free_port
from infra.settings import KafkaSettings, Settings
from schemas.codec import Codec
from schemas.registry import Record
from tests.integration.helpers import drain
from tests.support.call_stream import call_events

pytestmark = pytest.mark.integration

TOPIC = "test.edge.outage.facts"
FACTS: list[Record] = [*call_events("t1", "call-outage", "agent-1")]


async def _create_topic(kafka: KafkaSettings) -> None:
    admin = make_admin(kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
    finally:
        await admin.close()


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.05)


async def test_facts_published_while_the_broker_is_down_reach_it_when_it_returns(
    settings: Settings, tmp_path: Path
) -> None:
    # A broker of its own (this one is stopped mid-test), restarted on the same port. The
    # embedded broker keeps its log in memory, so the second one starts empty: the facts sent
    # before the outage are not looked for, only those published while it was away.
    port = free_port()
    broker: EmbeddedService = start_broker(tmp_path / "first", port=port)  # main thread: PDEATHSIG
    kafka = settings.kafka.model_copy(update={"bootstrap": broker.address})
    await _create_topic(kafka)
    # Batches expire after 1.5 s, well inside the outage: delivery then rests on the
    # publisher's own re-sends, not on the producer's internal retries.
    producer = make_producer(kafka, request_timeout_ms=1500)
    await producer.start()
    metrics, codec = EdgeMetrics(), Codec.single_object()
    publisher = KafkaFactPublisher(producer, codec, metrics, topic=TOPIC, stall_after_s=1.0, backoff_s=(0.3,))
    publisher.start()
    try:
        publisher.publish(FACTS[0])
        await _until(lambda: metrics.get("facts.sent") == 1, 20, "the first fact acked")
        await asyncio.to_thread(broker.stop)

        for fact in FACTS[1:]:
            assert publisher.publish(fact)
        await _until(lambda: not publisher.healthy, 10, "the publisher reports the stall")
        await _until(lambda: metrics.get("facts.retried") > 0, 20, "a window re-sent after its batch expired")
        assert metrics.get("facts.sent") == 1

        broker = start_broker(tmp_path / "second", port=port)  # blocks the loop a moment: harmless
        await _create_topic(kafka)
        await _until(lambda: metrics.get("facts.sent") == len(FACTS), 60, "every fact acked")
        assert publisher.healthy
    finally:
        await publisher.close(timeout_s=5)
        await producer.stop()

    consumer = make_consumer(kafka, TOPIC, group_id=None)
    await consumer.start()
    try:
        got = await drain(consumer, lambda seen: len(seen) >= len(FACTS) - 1, 30)
    finally:
        await stop_consumer(consumer)
        await asyncio.to_thread(broker.stop)
    delivered = [codec.decode(message.value or b"") for message in got]
    # Every fact published during the outage, in order, each once (the first pass failed as a
    # whole, so nothing overtook anything).
    assert delivered == FACTS[1:]
    assert metrics.get("facts.dropped") == 0
