"""stop_consumer swallows aiokafka's leaked cancellation and finishes the stop; never the caller's own."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer

from infra.kafka import stop_consumer


class _Client:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class _LeakyConsumer:
    """Stops like aiokafka#647: an internal task's cancellation comes out of stop(), which then
    never reaches its client's close()."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.stopped = False
        self._hold = hold
        self._client = _Client()

    async def stop(self) -> None:
        if self._hold is not None:
            await self._hold.wait()
        self.stopped = True
        internal = asyncio.get_running_loop().create_future()
        internal.cancel()
        await internal
        await self._client.close()


def _consumer(fake: Any) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, fake)


async def test_a_leaked_internal_cancellation_is_swallowed() -> None:
    fake = _LeakyConsumer()
    await stop_consumer(_consumer(fake))
    assert fake.stopped
    assert fake._client.closed  # the part of the stop that the leak skipped


async def test_cancelling_the_caller_still_cancels_it() -> None:
    fake = _LeakyConsumer(hold=asyncio.Event())
    task = asyncio.create_task(stop_consumer(_consumer(fake)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
