"""The Alembic migrations apply to the real PostgreSQL, into the default or a fresh schema."""

from __future__ import annotations

import uuid

import psycopg

from infra.db import database_url
from infra.migrate import current_revision, upgrade_database
from infra.settings import Settings


def _plain_url(settings: Settings) -> str:
    return database_url(settings.database).replace("postgresql+psycopg://", "postgresql://")


def _tables(settings: Settings, schema: str) -> set[str]:
    with psycopg.connect(_plain_url(settings)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {row[0] for row in rows}


def test_migrations_reach_head_and_create_the_checkpoint_tables(settings: Settings) -> None:
    upgrade_database(settings.database)
    upgrade_database(settings.database)  # idempotent
    assert current_revision(settings.database) is not None
    assert {"projection_checkpoint", "aggregate_position", "alembic_version"} <= _tables(settings, "public")


def test_migrations_build_a_fresh_schema_beside_the_live_one(settings: Settings) -> None:
    schema = f"rebuild_{uuid.uuid4().hex[:6]}"
    upgrade_database(settings.database, schema=schema)
    assert current_revision(settings.database, schema=schema) == current_revision(settings.database)
    assert {"projection_checkpoint", "aggregate_position"} <= _tables(settings, schema)
