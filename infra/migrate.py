"""Apply the Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from infra.db import database_url, schema_name_problem
from infra.settings import DatabaseSettings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database: DatabaseSettings, *, schema: str | None = None) -> Config:
    """An Alembic config pointing at our migrations and the configured database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic runs synchronously; psycopg 3 serves both modes under the same URL.
    config.set_main_option("sqlalchemy.url", database_url(database).replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


def upgrade_database(
    database: DatabaseSettings, *, revision: str = "head", schema: str | None = None
) -> None:
    """Bring the database (or one schema of it) up to the given revision."""
    problem = None if schema is None else schema_name_problem(schema)
    if problem is not None:  # the migrations write the name into SQL
        raise ValueError(problem)
    command.upgrade(alembic_config(database, schema=schema), revision)


def current_revision(database: DatabaseSettings, *, schema: str | None = None) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    engine = create_engine(database_url(database), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            options = {"version_table_schema": schema} if schema else {}
            return MigrationContext.configure(connection, opts=options).get_current_revision()
    finally:
        engine.dispose()
