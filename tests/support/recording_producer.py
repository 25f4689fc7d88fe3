"""The real producer, with a record of what went through it.

Tests that check what a component wrote to Kafka wrap the session's real ``AIOKafkaProducer``:
every send goes on to the broker (so encoding, keys and the broker round trip are exercised), and
the wrapper also keeps what was sent, in order, for the test's assertions. To see a record on the
broker itself, read it back with ``read_back`` (a real consumer at the acknowledged offset).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from infra.kafka import make_consumer, make_producer, start_producer, stop_consumer
from infra.settings import KafkaSettings
from schemas.codec import Codec
from schemas.registry import Record


@dataclass
class Sent:
    """One send handed to the real producer; ``metadata`` is set once the broker acknowledged it."""

    topic: str
    value: bytes | None
    key: bytes | None
    metadata: RecordMetadata | None = None


class RecordingProducer:
    """Forwards every send to a real producer and keeps it in ``sent`` (attempts, in order).

    Given a codec, each value is also decoded before it is forwarded and kept in ``records``: a
    value that does not decode raises in the sender, and never reaches the broker.
    """

    def __init__(self, producer: AIOKafkaProducer, codec: Codec | None = None) -> None:
        self._producer = producer
        self._codec = codec
        self.sent: list[Sent] = []
        self.records: list[Record] = []

    def _keep(self, topic: str, value: bytes | None, key: bytes | None) -> Sent:
        assert value is not None, f"a send to {topic} without a value"  # no component sends tombstones
        if self._codec is not None:
            self.records.append(self._codec.decode(value))
        sent = Sent(topic, value, key)
        self.sent.append(sent)
        return sent

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> RecordMetadata:
        sent = self._keep(topic, value, key)
        sent.metadata = await self._producer.send_and_wait(topic, value, key)
        return sent.metadata

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> asyncio.Future[RecordMetadata]:
        sent = self._keep(topic, value, key)
        future: asyncio.Future[RecordMetadata] = await self._producer.send(topic, value=value, key=key)

        def acked(done: asyncio.Future[RecordMetadata]) -> None:
            if not done.cancelled() and done.exception() is None:
                sent.metadata = done.result()

        future.add_done_callback(acked)
        return future


@contextlib.asynccontextmanager
async def recording_producer(
    kafka: KafkaSettings, codec: Codec | None = None
) -> AsyncIterator[RecordingProducer]:
    """A started real producer on ``kafka``, wrapped, for a block (module-scoped fixtures use it:
    the ``producer`` fixture is per test)."""
    producer = make_producer(kafka)
    await start_producer(producer)
    try:
        yield RecordingProducer(producer, codec)
    finally:
        await producer.stop()


async def read_back(
    kafka: KafkaSettings, sent: Sent, timeout_s: float = 20.0
) -> ConsumerRecord[bytes, bytes]:
    """The record ``sent`` as the broker holds it, read with a real consumer at its acknowledged offset."""
    assert sent.metadata is not None, f"the send to {sent.topic} was never acknowledged"
    partition = TopicPartition(sent.metadata.topic, sent.metadata.partition)
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        consumer.assign([partition])
        consumer.seek(partition, sent.metadata.offset)
        async with asyncio.timeout(timeout_s):
            while True:
                record: ConsumerRecord[bytes, bytes] = await consumer.getone(partition)
                if record.offset == sent.metadata.offset:
                    return record
    finally:
        await stop_consumer(consumer)
