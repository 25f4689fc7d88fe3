"""The --since/--until search takes an empty fetch for a slow broker, not for the partition's end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from infra.eventlog.reading import offsets_at

TP = TopicPartition("t", 0)
RECORDS = 100  # record n is stamped n seconds after the epoch


class SlowPartition:
    """A partition of RECORDS records whose fetch at ``slow_at`` answers nothing ``misses`` times."""

    def __init__(self, slow_at: int | None = None, misses: int = 0) -> None:
        self._position = 0
        self._slow_at = slow_at
        self._misses = misses

    async def beginning_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(parts, 0)

    async def offsets_for_times(self, query: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        return dict.fromkeys(query)  # no hint, as a broker without a time index

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def assign(self, parts: list[TopicPartition]) -> None:
        pass

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._position = offset

    async def getmany(
        self, tp: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Any]]:
        if self._position == self._slow_at and self._misses > 0:
            self._misses -= 1
            return {}  # nothing within timeout_ms
        if self._position >= RECORDS:
            return {}
        record = ConsumerRecord("t", 0, self._position, self._position * 1000, 0, b"k", b"v", None, 1, 1, [])
        return {TP: [record]}


async def _until_80(partition: SlowPartition) -> int:
    until = datetime.fromtimestamp(80, UTC)  # records 0..79 come before it
    found = await offsets_at(cast(AIOKafkaConsumer, partition), [TP], until, {TP: RECORDS})
    return found[TP]


async def test_a_probe_whose_fetch_answers_late_does_not_move_the_end_of_the_range() -> None:
    assert await _until_80(SlowPartition()) == 80
    assert await _until_80(SlowPartition(slow_at=50, misses=2)) == 80  # 50 is the first probe


async def test_a_probe_that_never_answers_is_taken_for_the_end() -> None:
    assert await _until_80(SlowPartition(slow_at=50, misses=1_000)) == 50
