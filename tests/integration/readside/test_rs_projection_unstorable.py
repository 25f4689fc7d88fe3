"""A record holding a value PostgreSQL text cannot store (a NUL) is dead-lettered before it is read,
and the rest of its batch is applied: as an aggregate id it failed the batch's position lookup, as a
tenant or agent id the batch's analytics, and the projection stopped on it for good."""

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
from schemas.ids import AgentId
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
