"""A migrated database of its own on the test PostgreSQL, for code that works on the default schema."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from infra.db import database_url
from infra.migrate import upgrade_database
from infra.settings import DatabaseSettings, Settings


async def fresh_database(settings: Settings) -> DatabaseSettings:
    """Settings naming a new, migrated database beside the test one."""
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    plain = database_url(settings.database).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = settings.database.url
    assert url is not None
    database = settings.database.model_copy(update={"url": url.rsplit("/", 1)[0] + "/" + name})
    await asyncio.to_thread(upgrade_database, database)
    return database
