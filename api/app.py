"""The composition root of the REST API: create_app builds everything, nothing is built at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api import agents, analytics, calls, campaigns, keys, knowledge, store, webhook_signing
from api.auth import PrincipalCache, RateLimiter
from api.commands import CommandBus, Sender
from api.deps import AppContext
from api.input_guard import RejectNulMiddleware
from api.problems import install_problem_handlers
from infra.db import make_engine
from infra.kafka import make_producer, start_producer
from infra.settings import Settings
from schemas.codec import Codec

# How long a key stays trusted without a database lookup: a revocation made through another
# worker, or in SQL, is honoured within this many seconds (docs/api.md).
PRINCIPAL_TTL_S = 5.0


def create_app(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    producer: Sender | None = None,
    codec: Codec | None = None,
    limiter: RateLimiter | None = None,
    principal_ttl_s: float = PRINCIPAL_TTL_S,
) -> FastAPI:
    """The API; the engine and producer are made in the lifespan unless given (tests give them)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # No pre-ping: it costs a round trip per request; a connection the server dropped fails
            # one request and SQLAlchemy then discards the pool (invalidate on disconnect).
            db = engine or make_engine(settings.database, pre_ping=False)
            if engine is None:
                stack.push_async_callback(db.dispose)
            sender = producer or await _started_producer(settings, stack)
            sessions = async_sessionmaker(db, expire_on_commit=False)
            # Reads run in autocommit: no BEGIN and no ROLLBACK round trip around each request.
            autocommit = db.execution_options(isolation_level="AUTOCOMMIT")
            reads = async_sessionmaker(autocommit, expire_on_commit=False)
            await _bootstrap(settings, sessions)
            app.state.context = AppContext(
                settings=settings,
                sessions=sessions,
                reads=reads,
                bus=CommandBus(sender, codec or Codec.single_object(), sessions, settings.api.write_wait_s),
                limiter=limiter or RateLimiter(settings.api.rate_limit_per_s, settings.api.rate_limit_burst),
                blob_dir=settings.api.blob_dir or settings.data_dir / "blobs",
                principals=PrincipalCache(principal_ttl_s),
            )
            yield

    app = FastAPI(
        title="Voice agent platform API",
        version="1",
        description="Agents, calls, knowledge bases and analytics. Errors are RFC 9457 problem details.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(RejectNulMiddleware)
    for module in (agents, calls, campaigns, knowledge, analytics, keys):
        app.include_router(module.router)
    app.include_router(webhook_signing.router_for(settings))  # refuses to start without its secrets
    return app


async def _started_producer(settings: Settings, stack: AsyncExitStack) -> AIOKafkaProducer:
    producer = make_producer(settings.kafka)
    await start_producer(producer)
    stack.push_async_callback(producer.stop)
    return producer


async def _bootstrap(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
    secret = settings.api.bootstrap_api_key.get_secret_value()
    if secret:
        async with sessions() as session, session.begin():
            await store.ensure_bootstrap_key(session, settings.api.bootstrap_tenant_id, secret)
