"""Records a projection refuses are dead-lettered, and the rest goes on.

A value PostgreSQL cannot store (a NUL, an id too long for an index) is refused before it is read:
as an aggregate id it failed the batch's position lookup, as a tenant or agent id the batch's
analytics, and the projection stopped on it for good. A refused record never moves its aggregate's
position, so the aggregate's own later events still apply."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.deadletter import DeadLetterPublisher
from infra.settings import Settings
from projections.agent_projection import AgentProjection
from projections.call_projection import CallProjection
from projections.runner import ProjectionRunner
from schemas.agents import AgentCreated
from schemas.codec import Codec
from schemas.ids import AgentId, EventId, TenantId
from tests.integration.readside.call_stream import call_events, scalar, unique
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.support.examples import example_record

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class _Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> object:
        self.sent.append((topic, value, key))
        return None


@pytest.fixture
async def rs_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    schema = await migrated_schema(settings)
    async with schema_sessions(settings, schema) as sessions:
        yield sessions


def _messages(codec: Codec, events: list) -> list[_Msg]:  # type: ignore[type-arg]
    return [_Msg("t", 0, offset, e.call_id.encode(), codec.encode(e)) for offset, e in enumerate(events)]


def _runner(
    projection: CallProjection | AgentProjection, sessions: Any, codec: Codec
) -> tuple[ProjectionRunner, _Sender]:
    sender = _Sender()
    dead_letters = DeadLetterPublisher(sender, codec, f"projection.{projection.name}")
    return ProjectionRunner(
        projection, session_factory=sessions, dead_letters=dead_letters, codec=codec
    ), sender


@pytest.mark.parametrize("field", ["call_id", "agent_id", "tenant_id"])
async def test_a_nul_in_a_call_events_ids_is_dead_lettered_and_the_batch_goes_on(
    rs_sessions: async_sessionmaker[AsyncSession], codec: Codec, field: str
) -> None:
    # As the call id it failed the batch's position lookup; as the tenant or agent, its analytics.
    tenant, agent = unique("tenant"), unique("agent")
    bad = call_events(tenant, unique("call"), agent)[0]
    bad = dataclasses.replace(bad, **{field: f"{getattr(bad, field)}\x00x"})
    good = call_events(tenant, unique("call"), agent)
    runner, sender = _runner(CallProjection(topic="t"), rs_sessions, codec)
    await runner.process(_messages(codec, [bad, *good]))
    assert runner.dead_lettered == 1
    assert "NUL" in sender.sent[0][1].decode(errors="replace")  # the reason travels with the record
    assert await scalar(rs_sessions, "SELECT count(*) FROM call_event") == len(good)


async def test_a_nul_in_an_agent_events_id_is_dead_lettered(
    rs_sessions: async_sessionmaker[AsyncSession], codec: Codec
) -> None:
    bad = example_record(AgentCreated)
    bad = dataclasses.replace(bad, agent_id=AgentId(unique("agent") + "\x00x"), seq=1)
    good = dataclasses.replace(bad, agent_id=AgentId(unique("agent")), seq=1, correlation_id=unique("corr"))
    runner, _ = _runner(AgentProjection(topic="t"), rs_sessions, codec)
    msgs = [_Msg("t", 0, i, e.agent_id.encode(), codec.encode(e)) for i, e in enumerate([bad, good])]
    await runner.process(msgs)
    assert runner.dead_lettered == 1
    assert await scalar(rs_sessions, "SELECT count(*) FROM agent") == 1


@pytest.mark.parametrize("same_batch", [False, True])
async def test_a_refused_record_does_not_move_its_aggregates_position(
    rs_sessions: async_sessionmaker[AsyncSession], codec: Codec, same_batch: bool
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
    runner, sender = _runner(CallProjection(topic="t"), rs_sessions, codec)
    await runner.process(_messages(codec, events))
    tail = _messages(codec, [intruder, *late])
    for offset, message in enumerate(tail, start=len(events)):
        message.offset = offset
    if same_batch:
        await runner.process(tail)
    else:
        for message in tail:
            await runner.process([message])
    assert runner.dead_lettered == 1
    assert "another tenant" in sender.sent[0][1].decode(errors="replace")
    assert await scalar(rs_sessions, "SELECT count(*) FROM call_event") == len(events) + 2
    assert await scalar(rs_sessions, "SELECT max(seq) FROM call_event") == 12


async def test_ids_too_long_for_an_index_are_dead_lettered_and_the_projection_goes_on(
    rs_sessions: async_sessionmaker[AsyncSession], codec: Codec
) -> None:
    # A 12,000-character call id used to fail the position insert outside any savepoint: every
    # restart read the same batch and stopped again.
    tenant, agent = unique("tenant"), unique("agent")
    long_call = call_events(tenant, "c" * 12_000, agent)[0]
    long_agent = dataclasses.replace(
        call_events(tenant, unique("call"), agent)[0], agent_id=AgentId("a" * 12_000)
    )
    good = call_events(tenant, unique("call"), agent)
    runner, sender = _runner(CallProjection(topic="t"), rs_sessions, codec)
    await runner.process(_messages(codec, [long_call, long_agent, *good]))
    assert runner.dead_lettered == 2
    reasons = [value.decode(errors="replace") for _, value, _ in sender.sent if value is not None]
    assert any("aggregate id is too long" in r for r in reasons)
    assert any("agent_id is longer than" in r for r in reasons)
    assert await scalar(rs_sessions, "SELECT count(*) FROM call_event") == len(good)


async def test_a_seq_below_one_is_dead_lettered_not_skipped(
    rs_sessions: async_sessionmaker[AsyncSession], codec: Codec
) -> None:
    tenant, agent = unique("tenant"), unique("agent")
    bad = dataclasses.replace(call_events(tenant, unique("call"), agent)[0], seq=0)
    runner, sender = _runner(CallProjection(topic="t"), rs_sessions, codec)
    await runner.process(_messages(codec, [bad]))
    assert (runner.dead_lettered, runner.skipped) == (1, 0)
    assert "seqs start at 1" in sender.sent[0][1].decode(errors="replace")


async def test_a_batch_with_a_refusal_is_redone_one_by_one(
    rs_sessions: async_sessionmaker[AsyncSession], codec: Codec
) -> None:
    tenant, agent = unique("tenant"), unique("agent")
    good = call_events(tenant, unique("call"), agent)
    runner, _ = _runner(CallProjection(topic="t"), rs_sessions, codec)
    await runner.process(_messages(codec, good[:4]))
    assert runner.fallbacks == 0  # the batch path took it
    intruder = dataclasses.replace(good[4], tenant_id=TenantId(unique("other")))
    rest = _messages(codec, [intruder, *good[4:]])
    await runner.process(rest)
    assert (runner.fallbacks, runner.dead_lettered) == (1, 1)
    assert await scalar(rs_sessions, "SELECT count(*) FROM call_event") == len(good)
