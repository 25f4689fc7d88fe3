"""A small event log over fresh topics (calls, agents, knowledge), its live read models, and dumps."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.settings import KafkaSettings, Settings
from projections.agent_projection import AgentProjection
from projections.call_projection import CallProjection
from projections.database import make_schema_engine
from projections.knowledge_projection import KnowledgeProjection
from projections.replay_fold import ReplayRequest
from schemas import agents, knowledge
from schemas.codec import Codec
from tests.integration.helpers import fresh_topic
from tests.integration.readside.call_stream import (
    CHECKPOINTS,
    CHECKPOINTS_QUERY,
    PROJECTION_TABLES,
    T0,
    call_events,
    eventually,
    unique,
)
from tests.integration.readside.call_stream import dump as dump_tables
from tests.integration.readside.running import make_runner, running
from tests.support.examples import example_record

TABLES = PROJECTION_TABLES | CHECKPOINTS


@dataclass(frozen=True, slots=True)
class Log:
    """Fresh topics per projection and how many records each holds."""

    topics: dict[str, str]
    records: int

    def request(self, schema: str, **options: Any) -> ReplayRequest:
        return ReplayRequest(
            schema=schema, projections=("agents", "knowledge", "calls"), topics=self.topics, **options
        )


async def fresh_topics(kafka: KafkaSettings) -> dict[str, str]:
    return {
        "calls": await fresh_topic(kafka, "replay-calls", partitions=3),
        "agents": await fresh_topic(kafka, "replay-agents", partitions=2),
        "knowledge": await fresh_topic(kafka, "replay-knowledge", partitions=1),
    }


async def produce_log(
    producer: AIOKafkaProducer, codec: Codec, topics: dict[str, str], *, calls: int = 60
) -> int:
    """Agents (created, published twice, one archived), a knowledge base with a document, and calls."""
    tenant = unique("tenant")
    agent_ids = [unique("agent") for _ in range(3)]
    sent = []

    async def send(topic: str, record: Any, key: str) -> None:
        sent.append(await producer.send(topic, codec.encode(record), key.encode()))

    for n, agent_id in enumerate(agent_ids):
        for record in _agent_events(tenant, agent_id, archived=n == 0):
            await send(topics["agents"], record, agent_id)
    kb_id = unique("kb")
    for record in _knowledge_events(tenant, kb_id):
        await send(topics["knowledge"], record, kb_id)
    for n in range(calls):
        call_id = f"{unique('call')}-{n}"
        start = T0.replace(hour=n % 24)
        for event in call_events(tenant, call_id, agent_ids[n % 3], start=start, talk_s=20 + n % 50):
            await send(topics["calls"], event, call_id)
    await asyncio.gather(*sent)
    return len(sent)


def _envelope(tenant: str, seq: int, tag: str, **ids: str) -> dict[str, Any]:
    return {"tenant_id": tenant, "seq": seq, "occurred_at": T0, "correlation_id": unique(tag)} | ids


def _agent_events(tenant: str, agent_id: str, *, archived: bool) -> list[Any]:
    ids = {"agent_id": agent_id}
    events = [
        example_record(agents.AgentCreated, 1, **_envelope(tenant, 1, "create", **ids), event_id=unique("e")),
        *(
            example_record(
                agents.AgentVersionPublished,
                v,
                **_envelope(tenant, 1 + v, "publish", **ids),
                event_id=unique("e"),
                version=v,
            )
            for v in (1, 2)
        ),
    ]
    if archived:
        events.append(
            example_record(
                agents.AgentArchived,
                4,
                **_envelope(tenant, 4, "archive", **ids),
                event_id=unique("e"),
                version=2,
            )
        )
    return events


def _knowledge_events(tenant: str, kb_id: str) -> list[Any]:
    ids = {"kb_id": kb_id}
    doc = unique("doc")
    chunks = tuple(
        knowledge.Chunk(chunk_id=f"{doc}-{n}", ordinal=n, text=f"Returns are free, part {n}.")
        for n in range(3)
    )
    return [
        example_record(
            knowledge.KnowledgeBaseCreated, 1, **_envelope(tenant, 1, "kb", **ids), event_id=unique("e")
        ),
        example_record(
            knowledge.DocumentAdded,
            2,
            **_envelope(tenant, 2, "doc", **ids),
            event_id=unique("e"),
            document_id=doc,
        ),
        example_record(
            knowledge.ChunksIndexed,
            3,
            **_envelope(tenant, 3, "chunks", **ids),
            event_id=unique("e"),
            document_id=doc,
            chunks=chunks,
        ),
    ]


async def build_live(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    codec: Codec,
    topics: dict[str, str],
    records: int,
) -> None:
    """The live path: each projection's runner in its own consumer group, until all is checkpointed."""
    projections = [
        AgentProjection(topic=topics["agents"]),
        KnowledgeProjection(topic=topics["knowledge"]),
        CallProjection(topic=topics["calls"]),
    ]
    async with contextlib.AsyncExitStack() as stack:
        for projection in projections:
            await stack.enter_async_context(
                running(make_runner(projection, sessions, producer, codec), settings.kafka)
            )
        await eventually(lambda: checkpointed_at_least(sessions, records), timeout_s=120)


async def checkpointed_at_least(sessions: async_sessionmaker[AsyncSession], records: int) -> bool:
    async with sessions() as session:
        done = (
            await session.execute(text("SELECT coalesce(sum(next_offset), 0) FROM projection_checkpoint"))
        ).scalar()
    return int(done or 0) >= records


async def dump(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Every row a projection writes, and the checkpoints, in key order."""
    return await dump_tables(sessions, TABLES)


def checkpointed(dumped: dict[str, Any]) -> int:
    """How many records the checkpoints of a dump say were applied (the topics start at offset 0)."""
    return sum(row["next_offset"] for row in dumped[CHECKPOINTS_QUERY])


def schema_exists(settings: Settings, schema: str) -> bool:
    """Whether PostgreSQL has a schema of that name (a refused replay must leave none)."""

    async def check() -> bool:
        engine = make_schema_engine(settings.database)
        try:
            async with engine.connect() as connection:
                found = await connection.execute(
                    text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": schema}
                )
                return bool(found.scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(check())
