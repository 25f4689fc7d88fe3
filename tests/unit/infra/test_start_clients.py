"""A Kafka client that cannot start is closed again: no "Unclosed AIOKafka..." after the error."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from infra.kafka import make_consumer, make_producer, start_consumer, start_producer
from infra.process import free_port
from infra.settings import KafkaSettings


def _unreachable() -> KafkaSettings:
    return KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there


async def _unclosed_reports(start: Any) -> list[str]:
    """What the loop's exception handler hears once the client that failed to start is collected."""
    heard: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: heard.append(str(context.get("message"))))
    with pytest.raises(KafkaConnectionError):
        await start()
    gc.collect()
    await asyncio.sleep(0)
    return [message for message in heard if "Unclosed" in message]


async def test_a_consumer_that_cannot_start_is_stopped() -> None:
    async def start() -> None:
        await start_consumer(make_consumer(_unreachable(), group_id=None))

    assert await _unclosed_reports(start) == []


async def test_a_producer_that_cannot_start_is_stopped() -> None:
    async def start() -> None:
        await start_producer(make_producer(_unreachable()))

    assert await _unclosed_reports(start) == []


async def test_without_them_the_clients_are_left_open() -> None:
    """The check above can fail: aiokafka itself leaves a failed client open."""

    async def start() -> None:
        await make_producer(_unreachable()).start()

    assert await _unclosed_reports(start) == ["Unclosed AIOKafkaProducer"]
