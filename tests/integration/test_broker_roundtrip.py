"""Every record type of the contract goes through the codec and the real broker and back."""

from __future__ import annotations

import dataclasses
import uuid

from aiokafka import TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.settings import Settings
from schemas.catalog import CATALOG
from schemas.codec import Codec, key_bytes
from tests.integration.helpers import drain
from tests.support.examples import example_record


async def test_every_record_type_round_trips_through_its_catalog_topic(settings: Settings) -> None:
    codec = Codec.single_object()
    run = uuid.uuid4().hex[:8]
    sent: dict[str, list[object]] = {}
    for spec in CATALOG:
        sent[spec.name] = [
            example_record(cls, n, **_unique(cls, f"{run}-{n}")) for n, cls in enumerate(spec.record_types)
        ]
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        partitions = [
            TopicPartition(spec.name, p)
            for spec in CATALOG
            for p in consumer.partitions_for_topic(spec.name) or set()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for spec in CATALOG:
            for record in sent[spec.name]:
                await producer.send_and_wait(spec.name, codec.encode(record), key_bytes(spec.key_of(record)))
        expected = {(topic, codec.encode(r)) for topic, records in sent.items() for r in records}
        received = await drain(consumer, lambda seen: expected <= {(m.topic, m.value) for m in seen})
    finally:
        await producer.stop()
        await consumer.stop()
    by_value = {(m.topic, m.value): m for m in received}
    for spec in CATALOG:
        for record in sent[spec.name]:
            message = by_value[(spec.name, codec.encode(record))]
            assert message.value is not None
            assert codec.decode(message.value) == record
            assert message.key == key_bytes(spec.key_of(record))


def _unique(cls: type, marker: str) -> dict[str, str]:
    # Keys and ids differ per run so concurrent tests on the shared catalog topics never collide.
    names = {f.name for f in dataclasses.fields(cls)}
    return {name: f"{name}-{marker}" for name in ("call_id", "agent_id", "kb_id") if name in names}
