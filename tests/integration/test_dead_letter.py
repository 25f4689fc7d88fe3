"""A record that does not decode lands in the dead-letter topic with its reason; the consumer goes on."""

from __future__ import annotations

import uuid

from aiokafka import TopicPartition

from infra.deadletter import DeadLetterPublisher, decode_or_dead_letter
from infra.kafka import make_consumer, make_producer
from infra.settings import Settings
from schemas.calls import DtmfReceived
from schemas.catalog import DEADLETTER
from schemas.codec import Codec
from schemas.deadletter import DeadLetter
from tests.integration.helpers import drain, fresh_topic
from tests.support.examples import example_record


async def test_undecodable_record_is_dead_lettered_and_consumption_continues(settings: Settings) -> None:
    codec = Codec.single_object()
    topic = await fresh_topic(settings.kafka, "dlq")
    good = example_record(DtmfReceived, 7, call_id=f"call-{uuid.uuid4().hex[:8]}")
    garbage = b"\xc3\x01not-a-known-fingerprint"
    producer = make_producer(settings.kafka)
    await producer.start()
    dlq = make_consumer(settings.kafka, group_id=None)
    await dlq.start()
    try:
        partitions = [
            TopicPartition(DEADLETTER.name, p) for p in dlq.partitions_for_topic(DEADLETTER.name) or ()
        ]
        dlq.assign(partitions)
        await dlq.seek_to_end(*partitions)
        await producer.send_and_wait(topic, garbage, key=b"bad-key")
        await producer.send_and_wait(topic, codec.encode(good), key=good.call_id.encode())

        consumer = make_consumer(settings.kafka, topic, group_id=f"dlq-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        publisher = DeadLetterPublisher(producer, codec, consumer_group="dlq-test")
        try:
            decoded = [
                await decode_or_dead_letter(codec, await consumer.getone(), publisher) for _ in range(2)
            ]
        finally:
            await consumer.stop()
        letters = await drain(dlq, lambda seen: any(m.key == b"bad-key" for m in seen))
    finally:
        await producer.stop()
        await dlq.stop()

    assert decoded == [None, good]
    letter = codec.decode_as(next(m.value for m in letters if m.key == b"bad-key" and m.value), DeadLetter)
    assert letter.original_topic == topic
    assert letter.offset == 0
    assert letter.value == garbage
    assert letter.reason == "undecodable"
    assert "fingerprint" in letter.error_message
