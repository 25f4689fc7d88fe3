"""The read side wired end to end for API tests: writers, projections and the app, in one block."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api import store
from api.app import create_app
from infra.process import stop_child
from infra.settings import Settings
from projections import models
from projections.agent_projection import AgentProjection
from projections.call_projection import CallProjection
from projections.jsonable import to_jsonable
from projections.knowledge_projection import KnowledgeProjection
from schemas.codec import Codec
from tests.integration.readside.call_stream import T0, unique
from tests.integration.readside.running import make_runner
from tests.integration.writers_process import start_writers, wait_until_deciding


@dataclass
class Tenant:
    tenant_id: str
    admin: dict[str, str]
    operator: dict[str, str]
    viewer: dict[str, str]


async def make_tenant(sessions: async_sessionmaker[AsyncSession]) -> Tenant:
    tenant_id = unique("tenant")
    headers = {}
    async with sessions() as session, session.begin():
        await store.ensure_tenant(session, tenant_id)
        for role in ("admin", "operator", "viewer"):
            _, secret = await store.create_api_key(session, tenant_id, role, f"{role} key")
            headers[role] = {"Authorization": f"Bearer {secret}"}
    return Tenant(
        tenant_id,
        headers["admin"],
        headers["operator"],
        {"X-API-Key": headers["viewer"]["Authorization"][7:]},
    )


async def insert_agent(
    session: AsyncSession,
    tenant_id: str,
    agent_id: str,
    *,
    name: str = "Front desk",
    voices: Sequence[str] = (),
    phone_numbers: Sequence[str] = (),
) -> None:
    """An active agent as the agent projection would write it: a published version per voice
    (version 1, 2, ...), or none (the row alone, at version 1)."""
    await session.execute(
        insert(models.Agent).values(
            agent_id=agent_id,
            tenant_id=tenant_id,
            name=name,
            created_by="seed",
            status="active",
            current_version=max(1, len(voices)),
            created_at=T0,
            updated_at=T0,
        )
    )
    for version, voice in enumerate(voices, start=1):
        config = to_jsonable(
            {"system_prompt": "Be brief.", "voice": voice, "tools": [], "phone_numbers": list(phone_numbers)}
        )
        await session.execute(
            insert(models.AgentVersion).values(
                agent_id=agent_id, version=version, tenant_id=tenant_id, config=config, published_at=T0
            )
        )


@contextlib.asynccontextmanager
async def platform(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    codec: Codec,
) -> AsyncIterator[httpx.AsyncClient]:
    """Agent and knowledge writers, the three projections and the API, all on the real stack.

    The writers are the real entry point (``python -m streams.writers``, a Faust worker) in a
    child process; projections and the API run in this loop.
    """
    stop = asyncio.Event()
    log = settings.data_dir / f"{unique('writers')}.log"
    # The writers read large documents from the API's blob directory.
    blob_dir = settings.api.blob_dir or settings.data_dir / "blobs"
    writers = await start_writers(settings, log, VOICE_API__BLOB_DIR=str(blob_dir.resolve()))
    tasks = []
    for projection in (AgentProjection(), KnowledgeProjection(), CallProjection()):
        runner = make_runner(projection, sessions, producer, codec)
        tasks.append(asyncio.create_task(runner.run(settings.kafka, stop=stop, group_id=unique("rs-p"))))
    app = create_app(settings, engine=engine, producer=producer, codec=codec)
    try:
        await wait_until_deciding(settings, producer, codec, log)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield client
    finally:
        stop.set()
        await asyncio.to_thread(stop_child, writers, timeout=20)
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
