"""Replay fixtures: a producer, the codec, a log and its live read models (broker and database: tests/)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.settings import Settings
from schemas.codec import Codec
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.replay.replay_support import Log, build_live, fresh_topics, produce_log

pytestmark = pytest.mark.integration


@pytest.fixture
async def live(
    settings: Settings, producer: AIOKafkaProducer, codec: Codec
) -> AsyncIterator[tuple[Log, str, async_sessionmaker[AsyncSession]]]:
    """A log over fresh topics and its read models built by the live runners in their own schema."""
    topics = await fresh_topics(settings.kafka)
    records = await produce_log(producer, codec, topics)
    schema = await migrated_schema(settings)
    async with schema_sessions(settings, schema) as sessions:
        await build_live(settings, sessions, producer, codec, topics, records)
        yield Log(topics, records), schema, sessions
