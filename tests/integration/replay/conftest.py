"""Replay fixtures: a producer and the codec (the session's broker and database come from tests/conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from infra.kafka import make_producer
from infra.settings import Settings
from schemas.codec import Codec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def codec() -> Codec:
    return Codec.single_object()


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(settings.kafka)
    await producer.start()
    yield producer
    await producer.stop()
