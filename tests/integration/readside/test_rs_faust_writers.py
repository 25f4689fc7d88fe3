"""The Faust writers over the real broker: optimistic concurrency, history from the log, a crash."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.kafka import make_consumer
from infra.process import stop_child, tail
from infra.settings import Settings
from schemas.agents import (
    AgentCommandRejected,
    AgentCreated,
    AgentEvent,
    AgentVersionPublished,
    CreateAgent,
    PublishAgentVersion,
)
from schemas.catalog import AGENT_COMMANDS, AGENT_EVENTS
from schemas.codec import Codec
from schemas.ids import AgentId, CorrelationId, EventId, TenantId
from streams.writers import agent_writer
from tests.integration.helpers import drain
from tests.integration.writers_process import app_id_of, start_writers
from tests.support.agents import agent_config
from tests.support.call_stream import unique

pytestmark = pytest.mark.integration

CODEC = Codec.single_object()  # the conftest fixture, for helpers outside a test
CONFIG = agent_config(silence_timeout_s=10)


def _envelope(agent: str) -> dict[str, Any]:
    return {
        "tenant_id": TenantId("tenant-writers"),
        "agent_id": AgentId(agent),
        "seq": 0,
        "event_id": EventId(unique("cmd")),
        "occurred_at": datetime.now(UTC),
        "correlation_id": CorrelationId(unique("corr")),
    }


def _create(agent: str) -> CreateAgent:
    return CreateAgent(**_envelope(agent), name="Writers", created_by="test")


def _publish(agent: str, expected_version: int) -> PublishAgentVersion:
    return PublishAgentVersion(**_envelope(agent), expected_version=expected_version, config=CONFIG)


@pytest.fixture
async def agent_events(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """The agent events topic, from its current end."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    numbers = consumer.partitions_for_topic(AGENT_EVENTS.name) or ()
    parts = [TopicPartition(AGENT_EVENTS.name, p) for p in numbers]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    yield consumer
    await consumer.stop()


async def _send(producer: AIOKafkaProducer, topic: str, *records: Any) -> None:
    for record in records:
        await producer.send_and_wait(topic, CODEC.encode(record), record.agent_id.encode())


async def _events_of(consumer: AIOKafkaConsumer, agent: str, count: int, log: Path) -> list[bytes]:
    """The raw events of ``agent``, once at least ``count`` of them were read."""

    def mine(seen: list[Any]) -> list[bytes]:
        return [r.value for r in seen if r.key == agent.encode() and r.value]

    try:
        return mine(await drain(consumer, lambda seen: len(mine(seen)) >= count, 90))
    except TimeoutError:
        raise AssertionError(tail(log, 60)) from None


def _stop(worker: subprocess.Popen[bytes]) -> None:
    stop_child(worker, sig=signal.SIGTERM, timeout=20)


async def test_two_commands_expecting_the_same_version_one_is_accepted_one_rejected(
    settings: Settings, producer: AIOKafkaProducer, agent_events: AIOKafkaConsumer, tmp_path: Path
) -> None:
    agent, log = unique("agt"), tmp_path / "writers.log"
    worker = await start_writers(settings, log)
    try:
        await _send(producer, AGENT_COMMANDS.name, _create(agent), _publish(agent, 0), _publish(agent, 0))
        events = [CODEC.decode(v) for v in await _events_of(agent_events, agent, 3, log)]
    finally:
        await asyncio.to_thread(_stop, worker)
    assert [type(e) for e in events] == [AgentCreated, AgentVersionPublished, AgentCommandRejected]
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[1].version == 1
    assert events[2].code == "version_conflict"


async def test_an_aggregate_whose_events_predate_the_table_keeps_its_history(
    settings: Settings, producer: AIOKafkaProducer, agent_events: AIOKafkaConsumer, tmp_path: Path
) -> None:
    """As after an upgrade from a writer without tables: the log has the agent, the table not."""
    agent, log = unique("agt"), tmp_path / "writers.log"
    state = agent_writer.initial_state(AgentId(agent))
    history: list[AgentEvent] = []
    for command in (_create(agent), _publish(agent, 0)):
        decided = agent_writer.decide(state, command)
        state, history = agent_writer.fold(state, decided), history + decided
    await _send(producer, AGENT_EVENTS.name, *history)
    worker = await start_writers(settings, log)
    try:
        await _send(producer, AGENT_COMMANDS.name, _publish(agent, 1))
        events = [CODEC.decode(v) for v in await _events_of(agent_events, agent, 3, log)]
    finally:
        await asyncio.to_thread(_stop, worker)
    published = events[2]
    assert isinstance(published, AgentVersionPublished), published
    assert (published.seq, published.version) == (3, 2)


async def test_a_crash_between_send_and_table_update_re_emits_identical_events(
    settings: Settings, producer: AIOKafkaProducer, agent_events: AIOKafkaConsumer, tmp_path: Path
) -> None:
    agent, log, marker = unique("agt"), tmp_path / "writers.log", tmp_path / "crashed"
    crash = {"CRASH_AGGREGATE": agent, "CRASH_MARKER": str(marker)}
    worker = await start_writers(settings, log, module="tests.integration.writers_crashing_worker", **crash)
    try:
        await _send(producer, AGENT_COMMANDS.name, _create(agent))
        created = await _events_of(agent_events, agent, 1, log)
        await asyncio.sleep(2)  # the table's changelog record of the first command reaches the broker
        await _send(producer, AGENT_COMMANDS.name, _publish(agent, 0))
        await asyncio.to_thread(worker.wait, 90)
        assert marker.exists(), tail(log, 60)
        worker = await start_writers(settings, log, app_id=app_id_of(worker))
        raw = created + await _events_of(agent_events, agent, 2, log)
    finally:
        await asyncio.to_thread(_stop, worker)
    events: list[AgentEvent] = [CODEC.decode(v) for v in raw]  # type: ignore[misc]
    by_id: dict[str, bytes] = {}
    for value, event in zip(raw, events, strict=True):
        assert by_id.setdefault(event.event_id, value) == value, "a re-emitted event differs"
    assert len(by_id) == 2
    assert len(raw) == 3, "the crashed command's event should have been re-emitted once"
    unique_events = sorted({e.event_id: e for e in events}.values(), key=lambda e: e.seq)
    assert [(type(e), e.seq) for e in unique_events] == [(AgentCreated, 1), (AgentVersionPublished, 2)]
