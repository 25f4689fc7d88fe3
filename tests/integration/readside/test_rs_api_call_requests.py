"""`POST /api/calls` answers what the dialer will do: the agent's own caller id only, a deadline that
can still be met, one call per idempotency key, and the dialer's refusal as a problem (it used to
answer 202 with a Location that never resolved)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.calls import CallCreate, _call_id
from projections.call_projection import CallProjection
from projections.campaign_projection import CampaignProjection
from projections.command_result import record_result
from schemas.dialer import DialerRequestRejected
from schemas.ids import CallId
from tests.integration.readside.call_stream import call_events, scalar, unique
from tests.integration.readside.test_rs_api_hand_parsed_input import World, world
from tests.integration.readside.test_rs_projection_unstorable import _Log, _runner, log, rs_sessions
from tests.support.examples import example_record

pytestmark = pytest.mark.integration
__all__ = ["log", "rs_sessions", "world"]  # fixtures


async def _place(world: World, **body: object) -> object:
    payload = {"agent_id": world.agent_id, "to_number": "+14155550100"} | body
    return await world.client.post("/api/calls", json=payload, headers=world.tenant.operator)


async def test_a_caller_id_that_is_not_the_agents_number_is_a_422(world: World) -> None:
    before = len(world.sender.sent)
    response = await _place(world, from_number="+14155550199")  # the agent has no numbers
    assert response.status_code == 422, response.text[:300]  # type: ignore[attr-defined]
    assert response.json()["errors"] == [  # type: ignore[attr-defined]
        {"field": "from_number", "message": "must be one of the agent's phone numbers"}
    ]
    assert len(world.sender.sent) == before


@pytest.mark.parametrize(
    "times",
    [
        {"deadline": "2025-01-01T00:00:00Z"},
        {"not_before": "2099-01-02T00:00:00Z", "deadline": "2099-01-01T00:00:00Z"},
    ],
    ids=["deadline passed", "deadline before not_before"],
)
async def test_a_deadline_that_cannot_be_met_is_a_422(world: World, times: dict[str, str]) -> None:
    before = len(world.sender.sent)
    response = await _place(world, **times)
    assert response.status_code == 422, response.text[:300]  # type: ignore[attr-defined]
    assert [e["field"] for e in response.json()["errors"]] == ["deadline"]  # type: ignore[attr-defined]
    assert len(world.sender.sent) == before


async def test_a_repeated_idempotency_key_names_the_same_call(world: World) -> None:
    key = unique("key")
    first = await _place(world, idempotency_key=key)
    again = await _place(world, idempotency_key=key)
    other = await _place(world, idempotency_key=unique("key"))
    locations = [r.headers["Location"] for r in (first, again, other)]  # type: ignore[attr-defined]
    assert locations[0] == locations[1] != locations[2]


async def test_the_dialers_refusal_is_the_answer(world: World) -> None:
    key = unique("key")
    call_id = _call_id(
        world.tenant.tenant_id,
        CallCreate(agent_id=world.agent_id, to_number="+14155550100", idempotency_key=key),
    )
    async with world.sessions() as session, session.begin():
        await record_result(
            session,
            correlation_id=call_id,
            tenant_id=world.tenant.tenant_id,
            aggregate_id=call_id,
            at=datetime.now(UTC),
            code="do_not_call",
            reason="+14155550100 is on the do-not-call list",
        )
    response = await _place(world, idempotency_key=key)
    assert response.status_code == 422, response.text[:300]  # type: ignore[attr-defined]
    problem = response.json()  # type: ignore[attr-defined]
    assert problem["code"] == "do_not_call"
    assert "do-not-call" in problem["detail"]


async def test_the_campaign_projection_records_a_refused_single_call(
    rs_sessions: async_sessionmaker[AsyncSession], log: _Log
) -> None:
    call_id, duplicate_of = unique("call"), unique("call")
    base = example_record(DialerRequestRejected, command_type="voice.dialer.v1.PlaceCall", campaign_id=None)
    refused = dataclasses.replace(
        base, call_id=CallId(call_id), reason="do_not_call", detail="on the list", seq=1
    )
    repeat = dataclasses.replace(base, call_id=CallId(duplicate_of), reason="duplicate", seq=2)
    runner, _ = _runner(CampaignProjection(topic=log.topic), rs_sessions, log)
    await runner.process(await log.append([refused, repeat], ["k", "k"]))
    sql = "SELECT code || ': ' || reason FROM command_result WHERE correlation_id = :id"
    assert await scalar(rs_sessions, sql, id=call_id) == "do_not_call: on the list"
    assert await scalar(rs_sessions, sql, id=duplicate_of) is None  # the call it repeats has its own outcome


async def test_a_repeat_answers_its_call_before_anything_is_checked_again(world: World, log: _Log) -> None:
    # A deadline that has passed since (or an agent archived since) refused the repeat.
    key = unique("key")
    call_id = _call_id(
        world.tenant.tenant_id,
        CallCreate(agent_id=world.agent_id, to_number="+14155550100", idempotency_key=key),
    )
    runner, _ = _runner(CallProjection(topic=log.topic), world.sessions, log)
    events = call_events(world.tenant.tenant_id, call_id, world.agent_id)
    await runner.process(await log.append(events, ["k"] * len(events)))
    before = len(world.sender.sent)
    response = await _place(world, idempotency_key=key, deadline="2025-01-01T00:00:00Z")
    assert response.status_code == 201, response.text[:300]  # type: ignore[attr-defined]
    assert response.json()["call_id"] == call_id  # type: ignore[attr-defined]
    assert len(world.sender.sent) == before
