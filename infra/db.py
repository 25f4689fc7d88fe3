"""The async SQLAlchemy 2 engine and session factory, on psycopg 3."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from infra.settings import DatabaseSettings


def database_url(database: DatabaseSettings) -> str:
    """The configured URL, normalised to the psycopg 3 driver."""
    if database.url is None:
        raise RuntimeError("VOICE_DATABASE__URL is not set and no embedded PostgreSQL was started")
    url = database.url
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(database: DatabaseSettings, *, pre_ping: bool = True) -> AsyncEngine:
    """An async engine; built in entrypoints only, never at import time.

    ``pre_ping`` tests each connection with a round trip before lending it out; a service whose
    requests are short reads may turn it off and let a dropped connection fail one request.
    """
    return create_async_engine(
        database_url(database),
        pool_size=database.pool_size,
        pool_pre_ping=pre_ping,
        echo=database.echo,
    )


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
