"""Engines bound to one PostgreSQL schema, so a projection can be rebuilt into a fresh schema."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from infra.db import database_url, make_engine, schema_name_problem
from infra.settings import DatabaseSettings


def make_schema_engine(database: DatabaseSettings, schema: str | None = None) -> AsyncEngine:
    """An engine whose connections use ``schema`` (the default search path when None)."""
    if schema is None:
        return make_engine(database)
    problem = schema_name_problem(schema)
    if problem is not None:
        raise ValueError(problem)
    return create_async_engine(
        database_url(database),
        pool_size=database.pool_size,
        pool_pre_ping=True,
        echo=database.echo,
        connect_args={"options": f"-csearch_path={schema}"},
    )
