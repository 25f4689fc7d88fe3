"""Read-side fixtures: a fresh, migrated PostgreSQL schema per test, a producer and the codec."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from infra.migrate import upgrade_database
from infra.settings import Settings
from projections.database import make_schema_engine

pytestmark = pytest.mark.integration


async def migrated_schema(settings: Settings) -> str:
    schema = f"rs_{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(upgrade_database, settings.database, schema=schema)
    return schema


@contextlib.asynccontextmanager
async def schema_sessions(settings: Settings, schema: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on ``schema`` for the length of a block."""
    engine = make_schema_engine(settings.database, schema)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


@pytest.fixture
async def schema(settings: Settings) -> str:
    return await migrated_schema(settings)


@pytest.fixture
async def engine(settings: Settings, schema: str) -> AsyncIterator[AsyncEngine]:
    engine = make_schema_engine(settings.database, schema)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
