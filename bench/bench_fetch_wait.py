"""What a consumer's fetch wait costs on the embedded broker: idle CPU against delivery delay (ADR 10).

    .venv/bin/python bench/bench_fetch_wait.py [--waits 10 20 50 100 250] [--records 200] [--partitions 12]

Starts an embedded Tansu broker. For each wait: one consumer (its own group) of a fresh topic
(12 partitions by default), 5 s with nothing to read (broker and consumer CPU), then records produced
one at a time at random 20-80 ms intervals to random partitions, each stamped with when it was
sent: the delay until the consumer has it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import NewTopic

from infra.embedded import start_broker
from infra.kafka import make_admin, make_producer
from infra.settings import KafkaSettings

IDLE_S = 5.0


async def one_wait(
    kafka: KafkaSettings, broker: psutil.Process, wait_ms: int, records: int, partitions: int
) -> None:
    topic = f"bench.fetch-wait.{wait_ms}.{partitions}"
    admin = make_admin(kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = make_producer(kafka, linger_ms=0)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=f"bench-{wait_ms}-{partitions}",
        fetch_max_wait_ms=wait_ms,
        auto_offset_reset="latest",
    )
    await producer.start()
    await consumer.start()
    delays: list[float] = []

    async def read() -> None:
        async for record in consumer:
            delays.append(time.perf_counter() - float(record.value or b"0"))

    reader = asyncio.create_task(read())
    try:
        await asyncio.sleep(3.0)  # the group joined and the first fetches are out
        broker.cpu_percent(None)
        own = time.process_time()
        await asyncio.sleep(IDLE_S)
        broker_idle = broker.cpu_percent(None)
        consumer_idle = (time.process_time() - own) / IDLE_S * 100
        for _ in range(records):
            await asyncio.sleep(random.uniform(0.02, 0.08))
            stamp = str(time.perf_counter()).encode()
            await producer.send_and_wait(topic, stamp, partition=random.randrange(partitions))
        await asyncio.sleep(1.0)
    finally:
        reader.cancel()
        await consumer.stop()
        await producer.stop()
    ms = sorted(d * 1000 for d in delays)

    def q(p: float) -> float:
        return ms[min(len(ms) - 1, int(p * len(ms)))]

    print(
        f"{partitions:>2} partitions, wait {wait_ms:>4} ms: {len(ms)}/{records} delivered, "
        f"delay p50 {q(0.5):.1f} p90 {q(0.9):.1f} "
        f"p99 {q(0.99):.1f} max {ms[-1]:.1f} ms; idle CPU broker {broker_idle:.1f} % "
        f"consumer (this process) {consumer_idle:.1f} %",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, nargs="+", default=[10, 20, 50, 100, 250])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--partitions", type=int, nargs="+", default=[12])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fetch-wait-") as tmp:
        broker = start_broker(Path(tmp))
        try:
            kafka = KafkaSettings(bootstrap=broker.address)
            for partitions in args.partitions:
                for wait_ms in args.waits:
                    await one_wait(kafka, psutil.Process(broker.pid), wait_ms, args.records, partitions)
        finally:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
