"""When the projection runner may linger: only once every assigned partition is caught up."""

from __future__ import annotations

from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition

from projections.runner import caught_up

A, B = TopicPartition("voice.calls.events.v1", 0), TopicPartition("voice.calls.events.v1", 1)


class FakeConsumer:
    """Positions and high watermarks as aiokafka reports them after a fetch."""

    def __init__(
        self, positions: dict[TopicPartition, int], highwater: dict[TopicPartition, int | None]
    ) -> None:
        self._positions, self._highwater = positions, highwater

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._highwater[tp]

    async def position(self, tp: TopicPartition) -> int:
        return self._positions[tp]


def _consumer(fake: FakeConsumer) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, cast(Any, fake))


async def test_caught_up_when_every_partition_is_read_to_its_high_watermark() -> None:
    assert await caught_up(_consumer(FakeConsumer({A: 10, B: 3}, {A: 10, B: 3})))


async def test_not_caught_up_while_one_partition_has_a_backlog() -> None:
    assert not await caught_up(_consumer(FakeConsumer({A: 10, B: 3}, {A: 10, B: 900})))


async def test_an_unknown_high_watermark_counts_as_a_backlog() -> None:
    assert not await caught_up(_consumer(FakeConsumer({A: 0}, {A: None})))


async def test_no_partitions_assigned_is_caught_up() -> None:
    assert await caught_up(_consumer(FakeConsumer({}, {})))
