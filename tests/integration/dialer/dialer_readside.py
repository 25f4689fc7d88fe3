"""The read side for dialer tests: a fresh schema, projection runners and the API, in one block."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from infra.kafka import make_producer
from infra.settings import Settings
from projections.runner import Projection
from schemas.codec import Codec
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.platform import Tenant, insert_agent, make_tenant
from tests.integration.readside.running import make_runner, running


@dataclass
class ReadSide:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    tenant: Tenant

    async def seed_agent(self, agent_id: str) -> None:
        """The agent as the agent projection would show it (the dialer learns it from the log)."""
        async with self.sessions() as session, session.begin():
            await insert_agent(session, self.tenant.tenant_id, agent_id, name="Reminders")


@contextlib.asynccontextmanager
async def read_side(settings: Settings, *projections: Projection) -> AsyncIterator[ReadSide]:
    schema = await migrated_schema(settings)
    codec = Codec.single_object()
    api = settings.api.model_copy(update={"write_wait_s": 2.0, "jwt_secret": SecretStr("x" * 40)})
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        async with contextlib.AsyncExitStack() as stack, schema_sessions(settings, schema) as sessions:
            for projection in projections:
                runner = make_runner(projection, sessions, producer, codec)
                await stack.enter_async_context(running(runner, settings.kafka))
            app = create_app(
                settings.model_copy(update={"api": api}),
                engine=sessions.kw["bind"],
                producer=producer,
                codec=codec,
            )
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                    yield ReadSide(client, sessions, await make_tenant(sessions))
    finally:
        await producer.stop()
