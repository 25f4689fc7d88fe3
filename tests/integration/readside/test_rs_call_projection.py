"""The call projection over the real broker and PostgreSQL: rows, replays, crashes, dead letters."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.deadletter import DeadLetterPublisher
from infra.kafka import make_consumer
from infra.settings import Settings
from projections import runner as runner_module
from projections.call_projection import CallProjection
from projections.runner import ProjectionRunner
from schemas.agents import AgentCreated
from schemas.catalog import DEADLETTER
from schemas.codec import Codec
from schemas.deadletter import DeadLetter
from schemas.ids import TenantId
from tests.integration.helpers import drain, fresh_topic
from tests.integration.readside.call_stream import call_events, dump, eventually, produce, scalar, unique
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.running import OneByOne, make_runner, running
from tests.support.examples import example_record

pytestmark = pytest.mark.integration


async def _two_calls(
    settings: Settings, producer: AIOKafkaProducer, codec: Codec
) -> tuple[str, str, str, str]:
    topic = await fresh_topic(settings.kafka, "rs-calls", partitions=3)
    tenant, agent = unique("tenant"), unique("agent")
    first, second = unique("call"), unique("call")
    await produce(producer, codec, topic, call_events(tenant, first, agent, talk_s=60), first)
    await produce(producer, codec, topic, call_events(tenant, second, agent, talk_s=120), second)
    return topic, tenant, agent, first


async def _ended_calls(sessions: async_sessionmaker[AsyncSession]) -> int:
    return int(await scalar(sessions, "SELECT count(*) FROM call WHERE ended_at IS NOT NULL") or 0)


async def test_rs_events_build_call_view_timeline_transcript_and_analytics(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer, codec: Codec
) -> None:
    topic, tenant, agent, first = await _two_calls(settings, producer, codec)
    runner = make_runner(CallProjection(topic=topic), sessions, producer, codec)
    async with running(runner, settings.kafka):
        await eventually(lambda: _call_count_is(sessions, 2))

    rows = await dump(sessions)
    call = next(r for r in rows["call"] if r["call_id"] == first)
    assert call["status"] == "completed"
    assert call["end_reason"] == "caller_hung_up"
    assert call["agent_version"] == 3
    assert call["duration_ms"] == 60_000  # answered at +1 s, ended at +61 s
    assert (call["interruptions"], call["tool_calls"], call["first_agent_audio_ms"]) == (1, 1, 800)
    assert [r["event_type"] for r in rows["call_event"] if r["call_id"] == first][-1] == "CallEnded"
    assert len(rows["call_event"]) == 20
    transcript = [r for r in rows["transcript_segment"] if r["call_id"] == first]
    assert [(r["text"], r["final"]) for r in transcript] == [("I want to check my order status", True)]
    tool = next(r for r in rows["tool_call"] if r["call_id"] == first)
    assert (tool["status"], tool["result_json"], tool["arguments_json"]) == (
        "completed",
        '{"status": "shipped"}',
        '{"id": 7}',
    )
    assert next(r for r in rows["recording"] if r["call_id"] == first)["duration_ms"] == 60_000
    [daily] = rows["analytics_daily"]
    assert (daily["tenant_id"], daily["agent_id"], daily["calls"], daily["completed"]) == (
        tenant,
        agent,
        2,
        2,
    )
    assert daily["avg_duration_ms"] == pytest.approx(90_000)
    assert daily["p95_duration_ms"] == pytest.approx(60_000 + 0.95 * 60_000)


async def _call_count_is(sessions: async_sessionmaker[AsyncSession], n: int) -> bool:
    return await _ended_calls(sessions) == n


async def test_rs_replay_from_offset_zero_changes_nothing(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer, codec: Codec
) -> None:
    topic, *_ = await _two_calls(settings, producer, codec)
    projection = CallProjection(topic=topic)
    async with running(make_runner(projection, sessions, producer, codec), settings.kafka):
        await eventually(lambda: _call_count_is(sessions, 2))
    before = await dump(sessions)

    async with sessions() as session, session.begin():
        await session.execute(text("DELETE FROM projection_checkpoint"))
    replay = make_runner(projection, sessions, producer, codec)
    async with running(replay, settings.kafka):
        await eventually(lambda: _checkpointed(sessions, 20))
    assert replay.applied == 0
    assert replay.skipped >= 20
    assert await dump(sessions) == before


async def _checkpointed(sessions: async_sessionmaker[AsyncSession], total: int) -> bool:
    return (
        int(await scalar(sessions, "SELECT coalesce(sum(next_offset), 0) FROM projection_checkpoint"))
        == total
    )


async def test_rs_crash_before_commit_loses_and_duplicates_nothing(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer, codec: Codec
) -> None:
    topic, *_ = await _two_calls(settings, producer, codec)
    crashes = 0

    async def crash() -> None:
        nonlocal crashes
        crashes += 1
        raise RuntimeError("simulated crash between the row writes and the commit")

    crashing = make_runner(CallProjection(topic=topic), sessions, producer, codec, before_commit=crash)
    async with running(crashing, settings.kafka) as task:
        with pytest.raises(RuntimeError, match="simulated crash"):
            await asyncio.wait_for(task, 30)
    assert crashes == 1
    assert await scalar(sessions, "SELECT count(*) FROM call_event") == 0
    assert await scalar(sessions, "SELECT count(*) FROM projection_checkpoint") == 0

    async with running(make_runner(CallProjection(topic=topic), sessions, producer, codec), settings.kafka):
        await eventually(lambda: _call_count_is(sessions, 2))
        await eventually(lambda: _checkpointed(sessions, 20))
    rows = await dump(sessions)
    assert len(rows["call_event"]) == 20
    assert len(rows["call"]) == 2


async def test_rs_bad_records_are_dead_lettered_and_the_projection_carries_on(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer, codec: Codec
) -> None:
    topic = await fresh_topic(settings.kafka, "rs-bad", partitions=1)
    tenant, agent, call_id = unique("tenant"), unique("agent"), unique("call")
    events = call_events(tenant, call_id, agent)
    await produce(producer, codec, topic, events[:2], call_id)
    await producer.send_and_wait(topic, b"\x00not avro at all", call_id.encode())
    await produce(producer, codec, topic, [example_record(AgentCreated)], call_id)
    await produce(producer, codec, topic, events[2:], call_id)

    consumer = make_consumer(settings.kafka, DEADLETTER.name, group_id=unique("rs-dlq"))
    await consumer.start()
    try:
        async with running(
            make_runner(CallProjection(topic=topic), sessions, producer, codec), settings.kafka
        ):
            await eventually(lambda: _call_count_is(sessions, 1))
        letters = await drain(consumer, lambda seen: len(_ours(seen, codec, topic)) >= 2)
    finally:
        await consumer.stop()
    ours = _ours(letters, codec, topic)
    # Dead letters are at-least-once: a batch redone record by record may send one twice.
    assert sorted({(d.offset, d.reason) for d in ours}) == [(2, "undecodable"), (3, "unknown_type")]
    assert all(d.key == call_id.encode() for d in ours)
    assert await scalar(sessions, "SELECT count(*) FROM call_event") == len(events)


def _ours(seen: list, codec: Codec, topic: str) -> list[DeadLetter]:  # type: ignore[type-arg]
    letters = [codec.decode_as(m.value, DeadLetter) for m in seen]
    return [d for d in letters if d.original_topic == topic]


async def test_rs_batched_apply_leaves_the_rows_of_one_by_one_and_refuses_a_foreign_tenant(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer, codec: Codec
) -> None:
    topic = await fresh_topic(settings.kafka, "rs-batch", partitions=1)
    tenant, agent, first, second = unique("tenant"), unique("agent"), unique("call"), unique("call")
    a, b = call_events(tenant, first, agent, talk_s=40), call_events(tenant, second, agent, talk_s=70)
    intruder = dataclasses.replace(a[3], tenant_id=TenantId(unique("other")), seq=11)
    interleaved = [e for pair in zip(a, b, strict=True) for e in pair]
    for event in interleaved:
        await produce(producer, codec, topic, [event], event.call_id)

    batched = make_runner(CallProjection(topic=topic), sessions, producer, codec)
    async with running(batched, settings.kafka):
        await eventually(lambda: _checkpointed(sessions, 20))
        assert batched.fallbacks == 0  # the batch path took every batch
        await produce(producer, codec, topic, [intruder], intruder.call_id)
        await eventually(lambda: _checkpointed(sessions, 21))
    one_by_one_schema = await migrated_schema(settings)
    async with schema_sessions(settings, one_by_one_schema) as other:
        reference = make_runner(OneByOne(CallProjection(topic=topic)), other, producer, codec)
        async with running(reference, settings.kafka):
            await eventually(lambda: _checkpointed(other, 21))
        assert await dump(sessions) == await dump(other)
    assert (batched.applied, batched.dead_lettered) == (reference.applied, reference.dead_lettered) == (20, 1)
    assert batched.fallbacks == 1  # the intruder's batch, redone record by record


class _BrokerAwayAtFirst:
    """The real producer behind a fault: the first ``failures`` sends fail as if the broker were away."""

    def __init__(self, producer: AIOKafkaProducer, failures: int) -> None:
        self._producer = producer
        self.failures = failures

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> object:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker away (injected)")
        return await self._producer.send_and_wait(topic, value, key)


async def test_rs_a_broker_outage_mid_batch_is_waited_out_and_the_batch_redone(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    codec: Codec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "OUTAGE_BACKOFF_S", (0.05,))
    topic = await fresh_topic(settings.kafka, "rs-outage", partitions=1)
    tenant, agent, call_id = unique("tenant"), unique("agent"), unique("call")
    events = call_events(tenant, call_id, agent)
    await produce(producer, codec, topic, events[:2], call_id)
    await producer.send_and_wait(topic, b"\x00not avro at all", call_id.encode())  # needs a dead letter
    await produce(producer, codec, topic, events[2:], call_id)

    sender = _BrokerAwayAtFirst(producer, failures=2)
    runner = ProjectionRunner(
        CallProjection(topic=topic),
        session_factory=sessions,
        dead_letters=DeadLetterPublisher(sender, codec, "projection.calls"),
        codec=codec,
    )
    async with running(runner, settings.kafka) as task:
        await eventually(lambda: _call_count_is(sessions, 1))
        assert not task.done()  # the outage stopped the batch, not the projection
    assert sender.failures == 0
    assert runner.dead_lettered >= 1
    assert await scalar(sessions, "SELECT count(*) FROM call_event") == len(events)
