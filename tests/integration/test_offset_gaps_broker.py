"""Many producers on one partition of the embedded broker: a consumer still reads every offset.

Tansu 0.6 (memory engine) can show a batch before an earlier one is stored; without
``infra.offset_gaps`` a consumer tailing the partition skips the earlier one for good.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from infra import offset_gaps
from infra.embedded import start_broker
from infra.kafka import make_admin, make_consumer, make_producer, stop_consumer
from infra.settings import Settings
from schemas.catalog import CALL_INPUTS

PRODUCERS = 8
RECORDS_EACH = 750


async def test_a_tailing_consumer_reads_every_offset_while_eight_producers_write_one_partition(
    settings: Settings, tmp_path: Path
) -> None:
    broker = start_broker(tmp_path / "broker")  # its own broker: thousands of records, one partition
    kafka = settings.kafka.model_copy(update={"bootstrap": broker.address})
    try:
        admin = make_admin(kafka)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(CALL_INPUTS.name, 1, 1)])
        finally:
            await admin.close()
        producers = [make_producer(kafka, linger_ms=0) for _ in range(PRODUCERS)]
        for producer in producers:
            await producer.start()
        consumer = make_consumer(kafka, group_id=None, fetch_max_wait_ms=5)
        await consumer.start()
        tp = TopicPartition(CALL_INPUTS.name, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)

        async def write(producer_index: int) -> None:
            for n in range(RECORDS_EACH):
                await producers[producer_index].send_and_wait(
                    CALL_INPUTS.name, b"%d-%d" % (producer_index, n), b"k"
                )

        writing = asyncio.gather(*(write(i) for i in range(PRODUCERS)))
        offsets: list[int] = []
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        try:
            async with asyncio.timeout(120):
                while len(offsets) < PRODUCERS * RECORDS_EACH:
                    batches = await consumer.getmany(timeout_ms=500)
                    offsets += [m.offset for messages in batches.values() for m in messages]
                    if batches:
                        quiet_since = loop.time()
                    # Done writing and nothing more for longer than a hole may be waited at
                    # (a loaded broker can take over 500 ms to store a batch already counted).
                    elif writing.done() and loop.time() - quiet_since > offset_gaps.MAX_WAIT_S + 1:
                        break
            await writing
        finally:
            await stop_consumer(consumer)
            for producer in producers:
                await producer.stop()
        assert offsets == list(range(PRODUCERS * RECORDS_EACH))
    finally:
        await asyncio.to_thread(broker.stop)
