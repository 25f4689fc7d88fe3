"""The Faust writers over the real broker: optimistic concurrency, history from the log, a crash."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.kafka import make_consumer
from infra.process import stop_child, tail
from infra.settings import KafkaSettings, Settings
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
from streams.writers.app import event_partition, events_in_log, state_changelog
from streams.writers.shell import fold_log
from streams.writers.spec import agent_spec
from tests.integration.helpers import drain, fresh_topic
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


def _history(agent: str) -> list[AgentEvent]:
    """The events a writer decides for creating ``agent`` and publishing its version 1."""
    state = agent_writer.initial_state(AgentId(agent))
    history: list[AgentEvent] = []
    for command in (_create(agent), _publish(agent, 0)):
        decided = agent_writer.decide(state, command)
        state, history = agent_writer.fold(state, decided), history + decided
    return history


def _one_agent_per_partition(partitions: Iterable[int]) -> list[str]:
    """New agent ids, the i-th keyed to the i-th of ``partitions`` of the events topic."""
    numbers = sorted(partitions)
    agents: list[str] = []
    for partition in numbers:
        agent = unique("agt")
        while event_partition(agent, numbers) != partition:
            agent = unique("agt")
        agents.append(agent)
    return agents


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
    return (await _events_of_each(consumer, [agent], count, log))[agent]


async def _events_of_each(
    consumer: AIOKafkaConsumer, agents: list[str], count: int, log: Path
) -> dict[str, list[bytes]]:
    """The raw events of each of ``agents``, once at least ``count`` of each were read."""

    def mine(seen: list[Any]) -> dict[str, list[bytes]]:
        return {a: [r.value for r in seen if r.key == a.encode() and r.value] for a in agents}

    read: dict[str, int] = {}

    def enough(seen: list[Any]) -> bool:
        read.update({agent: len(values) for agent, values in mine(seen).items()})
        return all(n >= count for n in read.values())

    try:
        seen = await drain(consumer, enough, 90)
    except TimeoutError:
        raise AssertionError(f"events read per agent, of {count}: {read}\n{tail(log, 60)}") from None
    return mine(seen)


async def _wait_for_changelog(kafka: KafkaSettings, topic: str, agent: str, log: Path) -> None:
    """Wait until ``topic`` (a table changelog) holds a record keyed by ``agent``."""
    timeout_s = 30
    consumer = make_consumer(kafka, topic, group_id=None)
    await consumer.start()
    try:
        await drain(consumer, lambda seen: any(r.key == agent.encode() for r in seen), timeout_s)
    except TimeoutError:
        raise AssertionError(
            f"no record keyed {agent!r} reached the changelog {topic} in {timeout_s} s:\n{tail(log, 60)}"
        ) from None
    finally:
        await consumer.stop()


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
    created, published, rejected = events
    assert isinstance(created, AgentCreated)
    assert isinstance(published, AgentVersionPublished)
    assert isinstance(rejected, AgentCommandRejected)
    assert [created.seq, published.seq, rejected.seq] == [1, 2, 3]
    assert published.version == 1
    assert rejected.code == "version_conflict"


async def test_an_aggregate_whose_events_predate_the_table_keeps_its_history(
    settings: Settings, producer: AIOKafkaProducer, agent_events: AIOKafkaConsumer, tmp_path: Path
) -> None:
    """As after an upgrade from a writer without tables: the log has the agents, the table not.

    One agent per events partition: each history is found on its own partition, among the
    other agents' events on the others.
    """
    log = tmp_path / "writers.log"
    agents = _one_agent_per_partition(agent_events.partitions_for_topic(AGENT_EVENTS.name) or ())
    assert len(agents) > 1, "the events topic should have several partitions"
    for agent in agents:
        await _send(producer, AGENT_EVENTS.name, *_history(agent))
    worker = await start_writers(settings, log)
    try:
        await _send(producer, AGENT_COMMANDS.name, *(_publish(agent, 1) for agent in agents))
        raw = await _events_of_each(agent_events, agents, 3, log)
    finally:
        await asyncio.to_thread(_stop, worker)
    for agent in agents:
        published = CODEC.decode(raw[agent][2])
        assert isinstance(published, AgentVersionPublished), published
        assert (published.seq, published.version) == (3, 2), agent


async def test_a_table_miss_reads_the_aggregates_events_from_their_partition_alone(
    settings: Settings, producer: AIOKafkaProducer
) -> None:
    """events_in_log reads the one partition the writers' producer sends an aggregate's events to."""
    partitions = [0, 1, 2]
    topic = await fresh_topic(settings.kafka, "writers-events", partitions=len(partitions))
    spec = dataclasses.replace(agent_spec(), events=dataclasses.replace(AGENT_EVENTS, name=topic))
    agents = _one_agent_per_partition(partitions)
    histories = {agent: _history(agent) for agent in agents}
    for agent, history in histories.items():
        for event in [*history, history[-1]]:  # the last one re-emitted, as after a crash
            sent = await producer.send_and_wait(topic, CODEC.encode(event), agent.encode())
            assert sent.partition == event_partition(agent, partitions)
    # A record no producer would put there: the first agent's key on the second agent's partition.
    stray = dataclasses.replace(histories[agents[0]][-1], seq=3, event_id=EventId(unique("stray")))
    await producer.send_and_wait(topic, CODEC.encode(stray), agents[0].encode(), partition=partitions[1])
    for agent, history in histories.items():
        found = await events_in_log(settings.kafka, spec, agent)
        expected = [history[0], history[1], history[1]]
        assert [(e.event_id, e.seq) for e in found] == [(e.event_id, e.seq) for e in expected], agent
        state = fold_log(spec, agent, found)
        assert (state.seq, state.version) == (2, 1), agent


async def test_a_crash_between_send_and_table_update_re_emits_identical_events(
    settings: Settings, producer: AIOKafkaProducer, agent_events: AIOKafkaConsumer, tmp_path: Path
) -> None:
    agent, log, marker = unique("agt"), tmp_path / "writers.log", tmp_path / "crashed"
    crash = {"CRASH_AGGREGATE": agent, "CRASH_MARKER": str(marker)}
    worker = await start_writers(settings, log, module="tests.integration.writers_crashing_worker", **crash)
    try:
        await _send(producer, AGENT_COMMANDS.name, _create(agent))
        created = await _events_of(agent_events, agent, 1, log)
        # The table's state after the first command must be on the broker before the crash.
        changelog = state_changelog(app_id_of(worker), agent_spec())
        await _wait_for_changelog(settings.kafka, changelog, agent, log)
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
