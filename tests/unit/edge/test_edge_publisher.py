"""The edge's fact publisher: every fact reaches the log in order, across a broker that goes away."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from edge.metrics import EdgeMetrics
from edge.publisher import KafkaFactPublisher
from schemas.codec import Codec
from schemas.registry import Record
from tests.support.call_stream import call_events

FACTS: list[Record] = [*call_events("t1", "call-1", "agent-1")[:6]]


class FlakyProducer:
    """A fake aiokafka producer: ``down`` decides, per send, whether the broker takes it.

    ``send`` returns the ack future like aiokafka's; an outage fails the ack (an expired batch)
    or ``send`` itself (the producer's buffer timed out).
    """

    def __init__(self, down: Callable[[int], str | None]) -> None:
        self.down = down
        self.sends = 0
        self.log: list[bytes] = []

    async def send(self, topic: str, *, value: bytes, key: bytes) -> asyncio.Future[object]:
        self.sends += 1
        failure = self.down(self.sends)
        if failure == "send":
            raise KafkaTimeoutError()
        if failure == "too_large":
            raise MessageSizeTooLargeError()
        ack: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if failure == "ack":
            ack.set_exception(KafkaTimeoutError())
        else:
            self.log.append(value)
            ack.set_result(None)
        return ack


def _publisher(producer: FlakyProducer, metrics: EdgeMetrics, **options: float) -> KafkaFactPublisher:
    return KafkaFactPublisher(
        producer,  # a fake with the one method the publisher calls
        Codec.single_object(),
        metrics,
        backoff_s=(0.01,),
        **options,  # type: ignore[arg-type]  # max_queue is an int
    )


def _decoded(producer: FlakyProducer) -> list[object]:
    codec = Codec.single_object()
    return [codec.decode(value) for value in producer.log]


async def test_every_fact_is_sent_once_in_order_when_the_broker_is_up() -> None:
    producer, metrics = FlakyProducer(lambda _: None), EdgeMetrics()
    publisher = _publisher(producer, metrics)
    publisher.start()
    for fact in FACTS:
        assert publisher.publish(fact)
    await publisher.close()
    assert _decoded(producer) == FACTS
    assert metrics.get("facts.sent") == len(FACTS)
    assert metrics.get("facts.retried") == 0


@pytest.mark.parametrize("how", ["send", "ack"])
async def test_facts_the_broker_did_not_take_are_resent_in_order(how: str) -> None:
    # The broker refuses sends 2 to 7: the first window's facts 2-6 fail, and their first
    # re-send fails once more, before it comes back.
    producer, metrics = FlakyProducer(lambda n: how if 2 <= n <= 7 else None), EdgeMetrics()
    publisher = _publisher(producer, metrics)
    publisher.start()
    for fact in FACTS:
        publisher.publish(fact)
    await publisher.close()
    assert _decoded(producer) == FACTS
    assert metrics.get("facts.sent") == len(FACTS)
    assert metrics.get("facts.retried") > 0


async def test_the_publisher_is_unhealthy_while_facts_wait_and_healthy_again_after() -> None:
    broker_up = asyncio.Event()
    producer, metrics = FlakyProducer(lambda _: None if broker_up.is_set() else "ack"), EdgeMetrics()
    publisher = _publisher(producer, metrics, stall_after_s=0.05)
    publisher.start()
    assert publisher.healthy
    publisher.publish(FACTS[0])
    await asyncio.sleep(0.1)
    assert not publisher.healthy
    broker_up.set()
    await asyncio.sleep(0.1)
    assert publisher.healthy
    publisher.publish(FACTS[1])
    await publisher.close()
    assert _decoded(producer) == FACTS[:2]


async def test_a_fact_that_cannot_be_encoded_is_counted_and_the_others_go_on() -> None:
    producer, metrics = FlakyProducer(lambda _: None), EdgeMetrics()
    publisher = _publisher(producer, metrics)
    publisher.start()
    publisher.publish(FACTS[0])
    publisher.publish(object())  # type: ignore[arg-type]  # not a record of the catalog
    publisher.publish(FACTS[1])
    await publisher.close()
    assert _decoded(producer) == FACTS[:2]
    assert metrics.get("facts.unencodable") == 1


async def test_a_full_queue_drops_and_counts_the_newest_fact() -> None:
    producer, metrics = FlakyProducer(lambda _: None), EdgeMetrics()
    publisher = _publisher(producer, metrics, max_queue=2)  # not started: nothing drains
    assert publisher.publish(FACTS[0])
    assert publisher.publish(FACTS[1])
    assert not publisher.publish(FACTS[2])
    assert metrics.get("facts.dropped") == 1


async def test_close_during_an_outage_gives_up_at_its_deadline_and_counts_the_loss() -> None:
    producer, metrics = FlakyProducer(lambda _: "ack"), EdgeMetrics()
    publisher = _publisher(producer, metrics)
    publisher.start()
    for fact in FACTS[:3]:
        publisher.publish(fact)
    await publisher.close(timeout_s=0.1)
    assert producer.log == []
    assert metrics.get("facts.lost_at_shutdown") == 3


async def test_close_does_not_hang_on_a_full_queue_in_an_outage_and_refuses_later_facts() -> None:
    producer, metrics = FlakyProducer(lambda _: "ack"), EdgeMetrics()
    publisher = _publisher(producer, metrics, max_queue=2)
    publisher.start()
    for fact in FACTS[:3]:  # one in the window being retried, two filling the queue
        publisher.publish(fact)
        await asyncio.sleep(0.01)
    await asyncio.wait_for(publisher.close(timeout_s=0.1), 2)
    assert metrics.get("facts.lost_at_shutdown") == 3
    assert not publisher.publish(FACTS[3])  # e.g. a recording stored after the drain
    assert metrics.get("facts.lost_at_shutdown") == 4


async def test_a_fact_the_broker_refuses_for_good_is_given_up_and_the_rest_go_on() -> None:
    producer, metrics = FlakyProducer(lambda n: "too_large" if n == 2 else None), EdgeMetrics()
    publisher = _publisher(producer, metrics)
    publisher.start()
    for fact in FACTS[:3]:
        publisher.publish(fact)
    await publisher.close()
    assert _decoded(producer) == [FACTS[0], FACTS[2]]
    assert metrics.get("facts.undeliverable") == 1
    assert metrics.get("facts.retried") == 0
