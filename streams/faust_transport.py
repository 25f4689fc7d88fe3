"""A Faust Kafka transport whose worker consumer waits milliseconds, not 1.5 s, for a fetch.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` in the worker consumer; against Tansu,
which sleeps out the full wait, that is the latency floor of every hop (DESIGN.md). We keep
Faust's consumer and only lower that one number, under our own URL scheme ``voicekafka://``.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "voicekafka"
_fetch_max_wait_ms = 10


class LowLatencyConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The stock consumer thread with a short fetch wait."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer: aiokafka.AIOKafkaConsumer = super()._create_worker_consumer(transport)
        # Read by the fetcher created in consumer.start(), which has not run yet.
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms
        return consumer


class LowLatencyConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, using the low-latency thread."""

    def _new_consumer_thread(self) -> LowLatencyConsumerThread:
        return LowLatencyConsumerThread(self, loop=self.loop, beacon=self.beacon)


class LowLatencyTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the low-latency consumer."""

    Consumer = LowLatencyConsumer


def register(fetch_max_wait_ms: int) -> str:
    """Make ``voicekafka://`` available to Faust apps; return the scheme."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = fetch_max_wait_ms
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:LowLatencyTransport"
    return SCHEME
