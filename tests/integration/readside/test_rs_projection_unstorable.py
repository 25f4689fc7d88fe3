"""Records a projection refuses are dead-lettered, and the rest goes on.

A value PostgreSQL cannot store (a NUL, an id too long for an index) is refused before it is read:
as an aggregate id it failed the batch's position lookup, as a tenant or agent id the batch's
analytics, and the projection stopped on it for good. A refused record never moves its aggregate's
position, so the aggregate's own later events still apply.

The records go through the real broker (produced, then read back by a consumer) and the runner is
given them a batch at a time; its dead letters are read back from the dead-letter topic."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.deadletter import DeadLetterPublisher
from infra.kafka import make_consumer, stop_consumer
from infra.settings import KafkaSettings, Settings
from projections.agent_projection import AgentProjection
from projections.call_projection import CallProjection
from projections.runner import Projection, ProjectionRunner
from schemas.agents import AgentCreated
from schemas.calls import CallEvent, CallReceived
from schemas.catalog import DEADLETTER
from schemas.codec import Codec
from schemas.deadletter import DeadLetter
from schemas.ids import AgentId, EventId, TenantId
from schemas.registry import Record
from tests.integration.helpers import drain, fresh_topic
from tests.integration.readside.call_stream import call_events, scalar, unique
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.support.examples import example_record
from tests.support.recording_producer import RecordingProducer, read_back

pytestmark = pytest.mark.integration


@pytest.fixture
async def rs_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    schema = await migrated_schema(settings)
    async with schema_sessions(settings, schema) as sessions:
        yield sessions


@dataclasses.dataclass
class _Log:
    """A topic of the test's own on the real broker: events go in by the real producer and come
    back as the records a real consumer reads, which the runner is given a batch at a time."""

    kafka: KafkaSettings
    producer: AIOKafkaProducer
    codec: Codec
    topic: str

    async def append(
        self, events: Sequence[Record], keys: Sequence[str]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Write the events (keyed by ``keys``), and read them back from the broker."""
        sent = [
            await self.producer.send_and_wait(self.topic, self.codec.encode(e), key.encode())
            for e, key in zip(events, keys, strict=True)
        ]
        partition = TopicPartition(self.topic, 0)
        consumer = make_consumer(self.kafka, group_id=None)
        await consumer.start()
        try:
            consumer.assign([partition])
            consumer.seek(partition, sent[0].offset)
            read = await drain(consumer, lambda seen: len(seen) >= len(events))
        finally:
            await stop_consumer(consumer)
        assert [m.offset for m in read] == [m.offset for m in sent]
        return read

    async def calls(self, events: Sequence[CallEvent]) -> list[ConsumerRecord[bytes, bytes]]:
        return await self.append(events, [e.call_id for e in events])


@pytest.fixture
async def log(settings: Settings, producer: AIOKafkaProducer, codec: Codec) -> _Log:
    return _Log(settings.kafka, producer, codec, await fresh_topic(settings.kafka, "rs-unstorable"))


def _runner(
    projection: Projection, sessions: async_sessionmaker[AsyncSession], log: _Log
) -> tuple[ProjectionRunner, RecordingProducer]:
    """The runner, its dead letters going to the real dead-letter topic through a recording producer."""
    sender = RecordingProducer(log.producer)
    dead_letters = DeadLetterPublisher(sender, log.codec, f"projection.{projection.name}")
    return ProjectionRunner(
        projection, session_factory=sessions, dead_letters=dead_letters, codec=log.codec
    ), sender


async def _letters(log: _Log, sender: RecordingProducer) -> list[DeadLetter]:
    """The dead letters the runner sent, as the broker holds them."""
    letters = []
    for sent in sender.sent:
        assert sent.topic == DEADLETTER.name
        letter = log.codec.decode_as((await read_back(log.kafka, sent)).value, DeadLetter)
        assert letter.original_topic == log.topic
        letters.append(letter)
    return letters


@pytest.mark.parametrize("field", ["call_id", "agent_id", "tenant_id"])
async def test_a_nul_in_a_call_events_ids_is_dead_lettered_and_the_batch_goes_on(
    rs_sessions: async_sessionmaker[AsyncSession], log: _Log, field: str
) -> None:
    # As the call id it failed the batch's position lookup; as the tenant or agent, its analytics.
    tenant, agent = unique("tenant"), unique("agent")
    first = call_events(tenant, unique("call"), agent)[0]
    assert isinstance(first, CallReceived)
    changes: dict[str, Any] = {field: f"{getattr(first, field)}\x00x"}
    bad = dataclasses.replace(first, **changes)
    good = call_events(tenant, unique("call"), agent)
    runner, sender = _runner(CallProjection(topic=log.topic), rs_sessions, log)
    batch = await log.calls([bad, *good])
    await runner.process(batch)
    assert runner.dead_lettered == 1
    [letter] = await _letters(log, sender)
    assert (letter.offset, letter.key, letter.value) == (batch[0].offset, batch[0].key, batch[0].value)
    assert "NUL" in letter.error_message  # the reason travels with the record
    assert await scalar(rs_sessions, "SELECT count(*) FROM call_event") == len(good)


async def test_a_nul_in_an_agent_events_id_is_dead_lettered(
    rs_sessions: async_sessionmaker[AsyncSession], log: _Log
) -> None:
    bad = example_record(AgentCreated)
    bad = dataclasses.replace(bad, agent_id=AgentId(unique("agent") + "\x00x"), seq=1)
    good = dataclasses.replace(bad, agent_id=AgentId(unique("agent")), seq=1, correlation_id=unique("corr"))
    runner, sender = _runner(AgentProjection(topic=log.topic), rs_sessions, log)
    batch = await log.append([bad, good], [bad.agent_id, good.agent_id])
    await runner.process(batch)
    assert runner.dead_lettered == 1
    assert [letter.offset for letter in await _letters(log, sender)] == [batch[0].offset]
    assert await scalar(rs_sessions, "SELECT count(*) FROM agent") == 1


@pytest.mark.parametrize("same_batch", [False, True])
async def test_a_refused_record_does_not_move_its_aggregates_position(
    rs_sessions: async_sessionmaker[AsyncSession], log: _Log, same_batch: bool
) -> None:
    # Another tenant's copy of the call's seq 12 is dead-lettered; it used to record seq 12 as
    # applied, and the call's own seq 11 and 12 were then skipped without a trace.
    tenant, agent, call_id = unique("tenant"), unique("agent"), unique("call")
    events = call_events(tenant, call_id, agent)
    intruder = dataclasses.replace(events[2], tenant_id=TenantId(unique("other")), seq=12)
    late = [
        dataclasses.replace(events[-1], seq=11, event_id=EventId(unique("late"))),
        dataclasses.replace(events[-1], seq=12, event_id=EventId(unique("late"))),
    ]
    runner, sender = _runner(CallProjection(topic=log.topic), rs_sessions, log)
    await runner.process(await log.calls(events))
    tail = await log.calls([intruder, *late])
    if same_batch:
        await runner.process(tail)
    else:
        for message in tail:
            await runner.process([message])
    assert runner.dead_lettered == 1
    # One refusal; in one batch it may be sent again when the batch is redone record by record.
    letters = await _letters(log, sender)
    assert {letter.offset for letter in letters} == {tail[0].offset}
    assert "another tenant" in letters[0].error_message
    assert await scalar(rs_sessions, "SELECT count(*) FROM call_event") == len(events) + 2
    assert await scalar(rs_sessions, "SELECT max(seq) FROM call_event") == 12


async def test_ids_too_long_for_an_index_are_dead_lettered_and_the_projection_goes_on(
    rs_sessions: async_sessionmaker[AsyncSession], log: _Log
) -> None:
    # A 12,000-character call id used to fail the position insert outside any savepoint: every
    # restart read the same batch and stopped again.
    tenant, agent = unique("tenant"), unique("agent")
    long_call = call_events(tenant, "c" * 12_000, agent)[0]
    other_call = call_events(tenant, unique("call"), agent)[0]
    assert isinstance(other_call, CallReceived)
    long_agent = dataclasses.replace(other_call, agent_id=AgentId("a" * 12_000))
    good = call_events(tenant, unique("call"), agent)
    runner, sender = _runner(CallProjection(topic=log.topic), rs_sessions, log)
    batch = await log.calls([long_call, long_agent, *good])
    await runner.process(batch)
    assert runner.dead_lettered == 2
    letters = {letter.offset: letter.error_message for letter in await _letters(log, sender)}
    assert sorted(letters) == [batch[0].offset, batch[1].offset]
    assert "aggregate id is too long" in letters[batch[0].offset]
    assert "agent_id is longer than" in letters[batch[1].offset]
    assert await scalar(rs_sessions, "SELECT count(*) FROM call_event") == len(good)


async def test_a_seq_below_one_is_dead_lettered_not_skipped(
    rs_sessions: async_sessionmaker[AsyncSession], log: _Log
) -> None:
    tenant, agent = unique("tenant"), unique("agent")
    bad = dataclasses.replace(call_events(tenant, unique("call"), agent)[0], seq=0)
    runner, sender = _runner(CallProjection(topic=log.topic), rs_sessions, log)
    await runner.process(await log.calls([bad]))
    assert (runner.dead_lettered, runner.skipped) == (1, 0)
    [letter] = await _letters(log, sender)
    assert "seqs start at 1" in letter.error_message


async def test_a_batch_with_a_refusal_is_redone_one_by_one(
    rs_sessions: async_sessionmaker[AsyncSession], log: _Log
) -> None:
    tenant, agent = unique("tenant"), unique("agent")
    good = call_events(tenant, unique("call"), agent)
    runner, sender = _runner(CallProjection(topic=log.topic), rs_sessions, log)
    await runner.process(await log.calls(good[:4]))
    assert runner.fallbacks == 0  # the batch path took it
    intruder = dataclasses.replace(good[4], tenant_id=TenantId(unique("other")))
    rest = await log.calls([intruder, *good[4:]])
    await runner.process(rest)
    assert (runner.fallbacks, runner.dead_lettered) == (1, 1)
    assert {letter.offset for letter in await _letters(log, sender)} == {rest[0].offset}
    assert await scalar(rs_sessions, "SELECT count(*) FROM call_event") == len(good)
