"""stop_consumer swallows aiokafka's leaked internal cancellation, never the caller's own."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer

from infra.kafka import stop_consumer


class _LeakyConsumer:
    """Stops like aiokafka#647: its own internal task's cancellation comes out of stop()."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.stopped = False
        self._hold = hold

    async def stop(self) -> None:
        if self._hold is not None:
            await self._hold.wait()
        self.stopped = True
        internal = asyncio.get_running_loop().create_future()
        internal.cancel()
        await internal


def _consumer(fake: Any) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, fake)


async def test_a_leaked_internal_cancellation_is_swallowed() -> None:
    fake = _LeakyConsumer()
    await stop_consumer(_consumer(fake))
    assert fake.stopped


async def test_cancelling_the_caller_still_cancels_it() -> None:
    fake = _LeakyConsumer(hold=asyncio.Event())
    task = asyncio.create_task(stop_consumer(_consumer(fake)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
