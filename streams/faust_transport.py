"""Faust's Kafka transport, tuned for the embedded broker: short fetch waits, true end offsets.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` in the worker consumer; against Tansu,
which sleeps out the full wait, that is the latency floor of every hop (DESIGN.md). We keep
Faust's consumer and only lower that one number, under our own URL scheme ``voicekafka://``.

Tansu also answers ListOffsets(latest) with the base offset of the last batch + 1
(``infra.eventlog.reading.end_offsets``). Faust recovers a table by reading its changelog up
to that answer, so a changelog ending in a multi-record batch was recovered without its last
updates: a restarted worker resumed from stale state. Recovery now asks a probe consumer for
the true ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import aiokafka
from aiokafka import TopicPartition
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from infra import offset_gaps
from infra.eventlog.reading import probed_end_offsets

SCHEME = "voicekafka"
_fetch_max_wait_ms = 10


class LowLatencyConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The stock consumer thread with a short fetch wait and true highwaters."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        offset_gaps.install()  # the embedded broker can show a record after later ones (ADR 14)
        consumer: aiokafka.AIOKafkaConsumer = super()._create_worker_consumer(transport)
        # Read by the fetcher created in consumer.start(), which has not run yet.
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        """The partitions' true ends (table recovery reads changelogs up to these).

        The probe is a separate, group-less consumer: finding the true end seeks and fetches,
        which must not move the worker consumer's positions. Recovery runs once per rebalance,
        so a probe's start-up (a few ms on a local broker) is cheap.
        """
        if self.consumer.in_transaction or not partitions:
            return await super()._highwaters(partitions)
        probe = self._create_client_consumer(cast(faust_aiokafka.Transport, self.transport))
        # aiokafka asserts its own TopicPartition type; Faust's TP is another namedtuple.
        ends = await probed_end_offsets(probe, [TopicPartition(tp.topic, tp.partition) for tp in partitions])
        return {tp: ends[TopicPartition(tp.topic, tp.partition)] for tp in partitions}


class LowLatencyConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, using the tuned thread."""

    def _new_consumer_thread(self) -> LowLatencyConsumerThread:
        return LowLatencyConsumerThread(self, loop=self.loop, beacon=self.beacon)


class LowLatencyTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the tuned consumer."""

    Consumer = LowLatencyConsumer


def register(fetch_max_wait_ms: int) -> str:
    """Make ``voicekafka://`` available to Faust apps; return the scheme."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = fetch_max_wait_ms
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:LowLatencyTransport"
    return SCHEME
