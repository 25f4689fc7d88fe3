"""Crash safety and rebuilds: SIGKILL mid-batch then restart; a rebuild from offset 0 into a new schema."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from infra.kafka import make_consumer
from infra.process import tail
from infra.settings import Settings
from projections.agent_projection import AgentProjection
from projections.call_projection import CallProjection
from projections.knowledge_projection import KnowledgeProjection
from schemas.catalog import AGENT_EVENTS, CALL_EVENTS, KNOWLEDGE_EVENTS
from schemas.codec import Codec
from tests.integration.helpers import fresh_topic
from tests.integration.readside.call_stream import (
    CHECKPOINTS,
    PROJECTION_TABLES,
    T0,
    call_events,
    dump,
    eventually,
    produce,
    scalar,
    unique,
)
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.platform import make_tenant, platform
from tests.integration.readside.running import OneByOne, make_runner, running
from tests.integration.readside.subprocess_service import spawn

pytestmark = pytest.mark.integration

CALLS = 600  # x 10 events: enough that the child is still working when it is killed
CHECKPOINTED = "SELECT coalesce(sum(next_offset), 0) FROM projection_checkpoint"


async def _produce_calls(producer: AIOKafkaProducer, codec: Codec, topic: str) -> int:
    tenant, agents = unique("tenant"), [unique("agent") for _ in range(3)]
    sent = []
    for n in range(CALLS):
        call_id = f"{unique('call')}-{n}"
        start = T0.replace(hour=n % 24)
        for event in call_events(tenant, call_id, agents[n % 3], start=start, talk_s=30 + n % 90):
            sent.append(await producer.send(topic, codec.encode(event), call_id.encode()))
    await asyncio.gather(*sent)
    return len(sent)


async def _checkpointed(sessions: async_sessionmaker[AsyncSession]) -> int:
    return int(await scalar(sessions, CHECKPOINTED))


async def _stop(child: subprocess.Popen[bytes], log: Path) -> None:
    child.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(child.wait, 20)
    assert code == 0, f"projections did not stop cleanly ({code}):\n{tail(log, 40)}"


async def test_rs_projection_killed_mid_batch_and_restarted_matches_an_uninterrupted_run(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    codec: Codec,
    tmp_path: Path,
) -> None:
    topic = await fresh_topic(settings.kafka, "rs-kill", partitions=3)
    total = await _produce_calls(producer, codec, topic)
    # The reference applies record by record; the child takes the batched path.
    reference = make_runner(OneByOne(CallProjection(topic=topic)), sessions, producer, codec)
    async with running(reference, settings.kafka):
        await eventually(lambda: _reached(sessions, total), timeout_s=120)
    expected = await dump(sessions, PROJECTION_TABLES | CHECKPOINTS)

    schema = await migrated_schema(settings)
    args = ["--only", "calls", "--topic", topic, "--schema", schema, "--max-records", "100"]
    args += ["--group-prefix", unique("rs-kill")]
    log = tmp_path / "projections.log"
    async with schema_sessions(settings, schema) as killed:
        child = spawn("projections", args, settings, log)
        try:
            await eventually(lambda: _started(killed), timeout_s=60)
            child.send_signal(signal.SIGKILL)
            await asyncio.to_thread(child.wait, 10)
        finally:
            child.kill()
        at_kill = await _checkpointed(killed)
        assert 0 < at_kill < total, "the child must die with work left to do"
        # What survived the kill is whole: exactly the events below the stored offsets have rows.
        assert await scalar(killed, "SELECT count(*) FROM call_event") == at_kill

        child = spawn("projections", args, settings, log)
        try:
            await eventually(lambda: _reached(killed, total), timeout_s=120)
            await _stop(child, log)
        finally:
            child.kill()
        assert await dump(killed, PROJECTION_TABLES | CHECKPOINTS) == expected


async def _started(sessions: async_sessionmaker[AsyncSession]) -> bool:
    return await _checkpointed(sessions) > 0


async def _reached(sessions: async_sessionmaker[AsyncSession], total: int) -> bool:
    return await _checkpointed(sessions) >= total


CONFIG = {"system_prompt": "Answer questions about the shop.", "voice": "Kore"}


async def test_rs_rebuild_from_offset_zero_into_a_fresh_schema_gives_identical_read_models(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    codec: Codec,
    tmp_path: Path,
) -> None:
    api = settings.api.model_copy(update={"write_wait_s": 20.0, "blob_dir": tmp_path})
    live_settings = settings.model_copy(update={"api": api})
    async with platform(live_settings, engine, sessions, producer, codec) as client:
        tenant = await make_tenant(sessions)
        agent = await client.post(
            "/api/agents", json={"name": "Shop", "config": CONFIG}, headers=tenant.admin
        )
        assert agent.status_code == 201, agent.text
        agent_id = agent.json()["agent_id"]
        republished = await client.post(
            f"/api/agents/{agent_id}/versions",
            json={"config": CONFIG | {"voice": "Puck"}},
            headers=tenant.admin | {"If-Match": '"1"'},
        )
        assert republished.status_code == 201, republished.text
        kb = await client.post("/api/knowledge/bases", json={"name": "Shop"}, headers=tenant.operator)
        kb_id = kb.json()["kb_id"]
        document = await client.post(
            f"/api/knowledge/bases/{kb_id}/documents",
            params={"title": "Returns"},
            content=b"Returns are free within 30 days. Bring the receipt.",
            headers=tenant.operator | {"Content-Type": "text/plain"},
        )
        assert document.status_code == 201, document.text
        for n in range(3):
            call_id = unique("call")
            events = call_events(tenant.tenant_id, call_id, agent_id, talk_s=20 + 10 * n)
            await produce(producer, codec, CALL_EVENTS.name, events, call_id)
        ends = await _end_offsets(settings, (AGENT_EVENTS.name, KNOWLEDGE_EVENTS.name, CALL_EVENTS.name))
        await eventually(lambda: _caught_up(sessions, ends), timeout_s=60)
    live = await dump(sessions, PROJECTION_TABLES | CHECKPOINTS)
    assert any(r["agent_id"] == agent_id for r in live["agent_version"])

    rebuilt_schema = await migrated_schema(settings)
    async with schema_sessions(settings, rebuilt_schema) as rebuilt:
        runners = [
            make_runner(p, rebuilt, producer, codec)
            for p in (AgentProjection(), KnowledgeProjection(), CallProjection())
        ]
        async with contextlib.AsyncExitStack() as stack:
            for runner in runners:
                await stack.enter_async_context(running(runner, settings.kafka))
            await eventually(lambda: _caught_up(rebuilt, ends), timeout_s=90)
        assert await dump(rebuilt, PROJECTION_TABLES | CHECKPOINTS) == live


async def _end_offsets(settings: Settings, topics: tuple[str, ...]) -> dict[tuple[str, int], int]:
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items() if offset > 0}


async def _caught_up(sessions: async_sessionmaker[AsyncSession], ends: dict[tuple[str, int], int]) -> bool:
    async with sessions() as session:
        rows = await session.execute(text("SELECT topic, partition, next_offset FROM projection_checkpoint"))
        stored = {(t, p): o for t, p, o in rows.all()}
    return all(stored.get(tp, 0) >= end for tp, end in ends.items())
