"""Bad input where the API parses by hand (campaign uploads) or computes past a bound: a clear 4xx,
never a 500, and never a command accepted that no consumer could decode.

Commands go to the real broker through a recording producer that keeps the raw bytes, so an
undecodable command shows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from infra.settings import Settings
from schemas.codec import Codec
from schemas.dialer import PlaceCall
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.platform import Tenant, insert_agent, make_tenant
from tests.support.call_stream import unique
from tests.support.recording_producer import RecordingProducer, read_back, recording_producer

pytestmark = pytest.mark.integration


@dataclass
class World:
    client: httpx.AsyncClient
    sender: RecordingProducer  # the real producer; ``sent`` keeps every send undecoded
    sessions: async_sessionmaker[AsyncSession]
    tenant: Tenant
    agent_id: str


@pytest.fixture(scope="module")
async def world(settings: Settings) -> AsyncIterator[World]:
    schema = await migrated_schema(settings)
    api = settings.api.model_copy(update={"write_wait_s": 0.05, "rate_limit_per_s": 10_000.0})
    api = api.model_copy(update={"jwt_secret": SecretStr("x" * 40)})
    async with recording_producer(settings.kafka) as sender, schema_sessions(settings, schema) as sessions:
        engine = sessions.kw["bind"]
        app = create_app(settings.model_copy(update={"api": api}), engine=engine, producer=sender)
        tenant = await make_tenant(sessions)
        agent_id = unique("agt")
        async with sessions() as session, session.begin():
            await insert_agent(session, tenant.tenant_id, agent_id, voices=("Puck",))
        async with app.router.lifespan_context(app):
            # raise_app_exceptions=False: an unhandled error comes back as the 500 a client would see.
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield World(client, sender, sessions, tenant, agent_id)


def _not_5xx_but_4xx(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])


async def _campaign(
    world: World, body: str | bytes, content_type: str = "application/json", **params: str
) -> httpx.Response:
    return await world.client.post(
        "/api/campaigns",
        params=params or None,
        content=body.encode() if isinstance(body, str) else body,
        headers=world.tenant.operator | {"Content-Type": content_type},
    )


def _campaign_json(world: World, numbers: object, **more: object) -> str:
    # json.dumps writes a lone surrogate as its escape, as a client in another language would
    return json.dumps({"agent_id": world.agent_id, "numbers": numbers} | more)


# analytics: the last representable day overflowed the date arithmetic


@pytest.mark.parametrize("path", ["/api/analytics", "/api/analytics/agents/{agent}"])
async def test_analytics_ending_on_the_last_representable_day_is_a_400(world: World, path: str) -> None:
    params = {"date_from": "9999-12-31", "date_to": "9999-12-31"}
    url = path.format(agent=world.agent_id)
    response = await world.client.get(url, params=params, headers=world.tenant.viewer)
    assert response.status_code == 400, response.text[:300]


# campaigns: bodies the hand-written parser reads


async def test_a_csv_cell_beyond_the_csv_modules_limit_is_a_422(world: World) -> None:
    body = "to_number,note\n+14155550100," + "a" * 200_000 + "\n"
    response = await _campaign(world, body, "text/csv", agent_id=world.agent_id, name="big")
    assert response.status_code == 422, response.text[:300]
    assert "cannot be read" in response.json()["detail"]


async def test_a_csv_with_bare_carriage_returns_is_read(world: World) -> None:
    # Excel for Mac's "CSV (Macintosh)" export ends lines with a bare CR.
    body = "to_number\r+14155550100\r+14155550101\r"
    response = await _campaign(world, body, "text/csv", agent_id=world.agent_id, name="mac")
    assert response.status_code in (201, 202), response.text[:300]
    assert response.json()["accepted"] == 2


@pytest.mark.parametrize(
    "body",
    [
        '{"agent_id": "x", "numbers": [' + "1" * 5000 + "]}",  # beyond Python's int parsing limit
        '{"agent_id": "x", "numbers": ' + "[" * 100_000 + "]" * 100_000 + "}",  # recursion
    ],
    ids=["5000-digit number", "nested 100000 deep"],
)
async def test_json_the_parser_cannot_take_is_a_422(world: World, body: str) -> None:
    response = await _campaign(world, body)
    assert response.status_code == 422, response.text[:300]


async def test_a_lone_surrogate_anywhere_in_a_campaign_is_a_422_and_nothing_is_sent(world: World) -> None:
    before = len(world.sender.sent)
    bodies = [
        json.dumps({"agent_id": "\ud800", "numbers": ["+14155550100"]}),
        _campaign_json(world, ["\ud800"]),
        _campaign_json(world, [{"to_number": "+14155550100", "variables": {"n": "\ud800"}}]),
    ]
    for body in bodies:
        response = await _campaign(world, body)
        assert response.status_code == 422, response.text[:300]
    assert len(world.sender.sent) == before


async def test_a_nul_in_a_campaign_not_labelled_json_is_a_422_and_nothing_is_sent(world: World) -> None:
    # The NUL guard in front reads only bodies labelled JSON; the campaign parser reads any.
    before = len(world.sender.sent)
    body = _campaign_json(world, ["+14155550100"], name="spring\x00sale")
    response = await _campaign(world, body, "text/plain")
    assert response.status_code == 422, response.text[:300]
    response = await _campaign(world, "to_number\n+1415555\x000100\n", "text/csv", agent_id=world.agent_id)
    assert response.status_code == 422, response.text[:300]
    assert len(world.sender.sent) == before


# calls: a time the API accepted but no consumer could decode


@pytest.mark.parametrize("when", ["9999-12-31T23:00:00-05:00", "0001-01-01T01:00:00+05:00"])
async def test_a_call_time_with_no_instant_in_utc_is_a_422(world: World, when: str) -> None:
    before = len(world.sender.sent)
    for name in ("not_before", "deadline"):
        body = {"agent_id": world.agent_id, "to_number": "+14155550100", name: when}
        response = await world.client.post("/api/calls", json=body, headers=world.tenant.operator)
        assert response.status_code == 422, response.text[:300]
    assert len(world.sender.sent) == before


# any JSON route: a lone surrogate encodes in no event and no row


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/agents", {"name": "ok", "config": {"system_prompt": "hi \ud800"}}),
        ("/api/calls", {"agent_id": "AGENT", "to_number": "+14155550100", "variables": {"k": "\udc00"}}),
        ("/api/calls", {"agent_id": "\ud800", "to_number": "+14155550100"}),
        ("/api/agents/AGENT/versions", {"expected_version": 1, "config": {"greeting": "\ud83d"}}),
    ],
    ids=["agent prompt", "call variable", "call agent id", "version greeting"],
)
async def test_a_lone_surrogate_in_a_json_body_is_a_422_and_nothing_is_sent(
    world: World, path: str, body: dict[str, object]
) -> None:
    # It was a plain-text 500 from the Avro encoder, and a created agent could be left without
    # its first version (the client never learned its id).
    before = len(world.sender.sent)
    text = json.dumps(body).replace("AGENT", world.agent_id)  # json.dumps escapes the surrogate
    response = await world.client.post(
        path.replace("AGENT", world.agent_id),
        content=text.encode(),
        headers=world.tenant.admin | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text[:300]
    assert "surrogate" in response.json()["detail"]
    assert len(world.sender.sent) == before


async def test_a_surrogate_pair_is_a_character_and_is_accepted(world: World, settings: Settings) -> None:
    before = len(world.sender.sent)
    body = json.dumps({"agent_id": world.agent_id, "to_number": "+14155550100", "variables": {"k": "😀"}})
    response = await world.client.post(
        "/api/calls",
        content=body.encode(),
        headers=world.tenant.operator | {"Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text[:300]
    [sent] = world.sender.sent[before:]
    # The command the broker holds decodes, with the pair as the one character it stands for.
    stored = await read_back(settings.kafka, sent)
    command = Codec.single_object().decode_as(stored.value, PlaceCall)
    assert (command.agent_id, command.variables) == (world.agent_id, {"k": "😀"})
