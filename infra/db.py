"""The async SQLAlchemy 2 engine and session factory, on psycopg 3."""

from __future__ import annotations

import re

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from infra.settings import DatabaseSettings

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def schema_name_problem(schema: str) -> str | None:
    """Why ``schema`` cannot name a read-model schema, or None.

    Schema names are written into SQL as identifiers (CREATE SCHEMA, search_path), so only
    plain lower-case names are taken: nothing to quote, nothing to inject.
    """
    if _SCHEMA_NAME.fullmatch(schema):
        return None
    rule = "lower-case letters, digits and _, at most 63, not starting with a digit"
    return f"invalid schema name {schema!r}: {rule}"


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


_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "40"})
"""Connection exceptions, insufficient resources, transaction rollbacks (deadlock, serialization)."""
_OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
"""The server is shutting down, crashed, or cannot accept connections yet."""


def is_database_outage(err: BaseException) -> bool:
    """The database is away or busy (retry later), rather than refusing this statement's data.

    A lost connection has no SQLSTATE or one of class 08; an error such as "index row size
    exceeds maximum" (54000) or a statement timeout is the data's doing and must not be retried
    forever.
    """
    if isinstance(err, InterfaceError):
        return True
    if not isinstance(err, DBAPIError):
        return False
    if err.connection_invalidated:
        return True
    if not isinstance(err, OperationalError):
        return False
    sqlstate = getattr(err.orig, "sqlstate", None)
    if not sqlstate:  # refused or dropped before the server said anything
        return True
    return sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES or sqlstate in _OUTAGE_SQLSTATES
