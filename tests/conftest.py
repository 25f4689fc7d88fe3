"""Shared fixtures: one real stack (embedded Tansu + PostgreSQL, or external ones) per session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from infra.kafka import make_producer
from infra.settings import Settings
from infra.stack import Stack, running_stack
from infra.topics import ensure_topics
from schemas.codec import Codec


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real broker and database; VOICE_KAFKA__BOOTSTRAP / VOICE_DATABASE__URL use external ones."""
    data_dir: Path = tmp_path_factory.mktemp("stack")
    settings = Settings(env="test", data_dir=data_dir)
    settings = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={
                    "partitions_override": 3,
                    "consumer_session_timeout_ms": 3000,
                    "consumer_heartbeat_interval_ms": 300,
                    "consumer_rebalance_timeout_ms": 1000,
                }
            )
        }
    )
    with running_stack(settings, durable=False) as running:
        asyncio.run(ensure_topics(running.settings.kafka))
        yield running


@pytest.fixture(scope="session")
def settings(stack: Stack) -> Settings:
    """Settings pointing at the session's real broker and database."""
    return stack.settings


@pytest.fixture(scope="session")
def codec() -> Codec:
    """The default codec (single-object encoding)."""
    return Codec.single_object()


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer on the session's broker."""
    producer = make_producer(settings.kafka)
    await producer.start()
    yield producer
    await producer.stop()
