"""After a restart the dialer reads, of the call inputs, only the partitions its unreported
attempts' call ids are keyed to, from the earliest start less a margin, to the ends the read
started at: records stamped earlier, records in other partitions and records appended after the
read starts are not read (``streams.dialer.call_log``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.eventlog.reading import read_range
from infra.kafka import make_producer, start_producer
from infra.settings import Settings
from schemas.calls import CallReceived, TranscriptSegment
from schemas.codec import Codec
from schemas.ids import CallId
from streams.dialer.call_log import call_input_partition, logged_calls
from streams.dialer.recovery import CallLogSearch
from tests.integration.helpers import fresh_topic
from tests.support.examples import example_record

pytestmark = pytest.mark.integration

CODEC = Codec.single_object()
PARTITIONS = 3
HOUR_MS = 3_600_000


def _ids_in(partition: int, count: int, prefix: str) -> list[CallId]:
    ids = (CallId(f"{prefix}-{n}") for n in range(10_000))
    return [c for c in ids if call_input_partition(c, range(PARTITIONS)) == partition][:count]


async def test_the_call_log_is_read_only_where_and_since_unreported_calls_can_be(settings: Settings) -> None:
    topic = await fresh_topic(settings.kafka, "dialer-call-log", partitions=PARTITIONS)
    now_ms = int(time.time() * 1000)
    since = datetime.fromtimestamp(now_ms / 1000, UTC) - timedelta(minutes=1)
    logged, too_early, elsewhere = _ids_in(0, 3, "wanted")
    (other,) = _ids_in(1, 1, "other")
    producer = make_producer(settings.kafka)
    await start_producer(producer)
    try:

        async def put(record: Any, partition: int, stamped_ms: int) -> None:
            value = CODEC.encode(record)
            key = record.call_id.encode()
            await producer.send_and_wait(topic, value, key, partition=partition, timestamp_ms=stamped_ms)

        # Partition 0, an hour before the search: a CallReceived of a wanted call, and media facts.
        await put(example_record(CallReceived, call_id=too_early), 0, now_ms - HOUR_MS)
        for n in range(5):
            await put(example_record(TranscriptSegment, n, call_id=other), 0, now_ms - HOUR_MS + n)
        # Partition 0 from the search's start: one wanted call's CallReceived, and media facts.
        await put(example_record(TranscriptSegment, call_id=other), 0, now_ms)
        await put(example_record(CallReceived, call_id=logged), 0, now_ms)
        await put(example_record(TranscriptSegment, 2, call_id=logged), 0, now_ms + 1)
        # Partitions 1 and 2 (not where the wanted calls are keyed): a wanted call's CallReceived
        # there, misrouted on purpose, would be found if they were read.
        await put(example_record(CallReceived, call_id=elsewhere), 1, now_ms)
        await put(example_record(CallReceived, call_id=elsewhere), 2, now_ms)

        plans: list[int] = []
        advanced: list[int] = []

        def read(*args: Any, **kwargs: Any) -> Any:
            plan, advance = kwargs["on_plan"], kwargs["on_advance"]

            def on_plan(total: int) -> None:
                plans.append(total)
                plan(total)

            def on_advance(n: int) -> None:
                advanced.append(n)
                advance(n)

            events = read_range(*args, **kwargs | {"on_plan": on_plan, "on_advance": on_advance})

            async def appending_after_the_start() -> Any:
                first = True
                async for event in events:
                    if first:  # the read has started: this one is past the end it took
                        await put(example_record(CallReceived, call_id=elsewhere), 0, now_ms + 2)
                        first = False
                    yield event

            return appending_after_the_start()

        search = CallLogSearch(call_ids=frozenset({logged, too_early, elsewhere}), since=since)
        found = await logged_calls(settings.kafka, CODEC, search, topic=topic, read=read)
    finally:
        await producer.stop()
    assert found == {logged}
    assert plans == [3]  # partition 0's three records stamped from the search's start
    assert sum(advanced) == 3
