"""``--since`` finds the first record stamped at or after it, whatever the broker's time lookup says.

Tansu answers ``ListOffsets`` by timestamp with an early offset (often 0) for most timestamps. A
restored log carries its records' original (older) timestamps, so trusting that answer, or
giving up on it, skipped whole partitions.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from infra.eventlog.reading import end_offsets, offsets_at
from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.settings import Settings
from tests.integration.helpers import fresh_topic

pytestmark = pytest.mark.integration

_RECORDS = 9
_STEP_MS = 1_000


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@pytest.mark.parametrize("age", ["an hour old", "stamped in the future"])
async def test_since_finds_the_first_record_stamped_at_or_after_it(
    settings: Settings, producer: AIOKafkaProducer, age: str
) -> None:
    now = int(time.time() * 1000)
    t0 = now - 3_600_000 if age == "an hour old" else now + 3_600_000
    topic = await fresh_topic(settings.kafka, "since", partitions=1)
    batch = producer.create_batch()  # one batch of three, then single-record batches
    for n in range(3):
        batch.append(key=b"k", value=b"v%d" % n, timestamp=t0 + n * _STEP_MS)
    batch.close()
    await (await producer.send_batch(batch, topic, partition=0))
    for n in range(3, _RECORDS):
        await producer.send_and_wait(topic, b"v%d" % n, b"k", partition=0, timestamp_ms=t0 + n * _STEP_MS)
    tp = TopicPartition(topic, 0)
    consumer = make_consumer(settings.kafka, group_id=None)
    await start_consumer(consumer)
    try:
        ends = await end_offsets(consumer, [tp])
        found = {}
        for since_ms in (-500, 0, 500, 2_500, 3_000, 5_500, 8_000, 8_500):
            offsets = await offsets_at(consumer, [tp], _at(t0 + since_ms), ends)
            found[since_ms] = offsets[tp]
    finally:
        await stop_consumer(consumer)
    assert ends[tp] == _RECORDS
    assert found == {-500: 0, 0: 0, 500: 1, 2_500: 3, 3_000: 3, 5_500: 6, 8_000: 8, 8_500: _RECORDS}
