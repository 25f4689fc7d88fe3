"""Roles and tenant isolation on every route of the OpenAPI schema (a new route without a row here fails).

Tenant A's read models are seeded directly; commands go to the real broker through a recording
producer, so a request of tenant B that reached the command bus for A's data would show up there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import store
from api.app import create_app
from infra.settings import Settings
from projections import call_view, dialer_models, models
from schemas.calls import RecordingAvailable, ToolCallRequested, TranscriptSegment
from schemas.codec import Codec
from schemas.registry import Record
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.platform import Tenant, insert_agent, make_tenant
from tests.support.call_stream import T0, call_events, unique
from tests.support.recording_producer import RecordingProducer, recording_producer

pytestmark = pytest.mark.integration

RANKS = ("viewer", "operator", "admin")
CONFIG = {"system_prompt": "Be brief.", "voice": "Puck"}
DAY = T0.date().isoformat()
# Text only tenant A's rows hold (a request of B must never get it back).
A_TEXTS = ("Parcel lockers are emptied", "I want to check my order status", "lookup_order", "Front desk")

Ids = dict[str, str]
Request = Callable[[Ids], dict[str, Any]]


def _none(ids: Ids) -> dict[str, Any]:
    return {}


# (method, path) -> (least role, what a valid request carries besides the path ids)
ROUTES: dict[tuple[str, str], tuple[str, Request]] = {
    ("POST", "/api/agents"): ("admin", lambda ids: {"json": {"name": "New", "config": CONFIG}}),
    ("GET", "/api/agents"): ("viewer", _none),
    ("GET", "/api/agents/{agent_id}"): ("viewer", _none),
    ("DELETE", "/api/agents/{agent_id}"): ("admin", _none),
    ("POST", "/api/agents/{agent_id}/versions"): (
        "admin",
        lambda ids: {"json": {"config": CONFIG}, "headers": {"If-Match": '"2"'}},
    ),
    ("GET", "/api/agents/{agent_id}/versions"): ("viewer", _none),
    ("GET", "/api/agents/{agent_id}/versions/{version}"): ("viewer", _none),
    ("GET", "/api/agents/{agent_id}/diff"): ("viewer", lambda ids: {"params": {"from": 1, "to": 2}}),
    ("POST", "/api/agents/{agent_id}/rollback"): (
        "admin",
        lambda ids: {"json": {"to_version": 1}, "headers": {"If-Match": '"2"'}},
    ),
    ("GET", "/api/calls"): ("viewer", lambda ids: {"params": {"agent_id": ids["agent_id"]}}),
    ("POST", "/api/calls"): (
        "operator",
        lambda ids: {"json": {"agent_id": ids["agent_id"], "to_number": "+31612345678"}},
    ),
    ("GET", "/api/calls/{call_id}"): ("viewer", _none),
    ("GET", "/api/calls/{call_id}/timeline"): ("viewer", _none),
    ("GET", "/api/calls/{call_id}/transcript"): ("viewer", _none),
    ("GET", "/api/calls/{call_id}/tool-calls"): ("viewer", _none),
    ("GET", "/api/calls/{call_id}/recording"): ("viewer", _none),
    ("POST", "/api/calls/{call_id}/end"): ("operator", lambda ids: {"json": {}}),
    ("POST", "/api/campaigns"): (
        "operator",
        lambda ids: {"json": {"agent_id": ids["agent_id"], "numbers": ["+31612345678"]}},
    ),
    ("GET", "/api/campaigns/{campaign_id}"): ("viewer", _none),
    ("POST", "/api/campaigns/{campaign_id}/pause"): ("operator", _none),
    ("POST", "/api/campaigns/{campaign_id}/resume"): ("operator", _none),
    ("POST", "/api/campaigns/{campaign_id}/cancel"): ("operator", _none),
    ("POST", "/api/knowledge/bases"): ("operator", lambda ids: {"json": {"name": "New"}}),
    ("GET", "/api/knowledge/bases"): ("viewer", _none),
    ("GET", "/api/knowledge/bases/{kb_id}"): ("viewer", _none),
    ("GET", "/api/knowledge/bases/{kb_id}/documents"): ("viewer", _none),
    ("POST", "/api/knowledge/bases/{kb_id}/documents"): (
        "operator",
        lambda ids: {
            "params": {"title": "Hours"},
            "content": b"Open nine to five.",
            "headers": {"Content-Type": "text/plain"},
        },
    ),
    ("GET", "/api/knowledge/bases/{kb_id}/documents/{document_id}"): ("viewer", _none),
    ("DELETE", "/api/knowledge/bases/{kb_id}/documents/{document_id}"): ("operator", _none),
    ("GET", "/api/knowledge/search"): (
        "viewer",
        lambda ids: {"params": {"q": "parcel lockers", "kb_id": ids["kb_id"]}},
    ),
    ("GET", "/api/analytics"): ("viewer", lambda ids: {"params": {"date_from": DAY, "date_to": DAY}}),
    ("GET", "/api/analytics/agents/{agent_id}"): (
        "viewer",
        lambda ids: {"params": {"date_from": DAY, "date_to": DAY}},
    ),
    ("GET", "/api/keys"): ("admin", _none),
    ("POST", "/api/keys"): ("admin", lambda ids: {"json": {"name": "ci", "role": "viewer"}}),
    ("DELETE", "/api/keys/{key_id}"): ("admin", _none),
    ("POST", "/api/auth/token"): ("viewer", _none),
    ("GET", "/api/webhook-signing-key"): ("admin", _none),
}
# Routes without a path id that name A's agent in the body: for B it reads as missing.
BODY_SCOPED = {("POST", "/api/calls"), ("POST", "/api/campaigns")}
# The fields by which a command names its aggregate; a command of B must name none of A's.
AGGREGATE_FIELDS = ("agent_id", "kb_id", "call_id", "campaign_id")
# Tables _seed writes for tenant A.
SEEDED_TABLES = (
    "agent",
    "agent_version",
    "call",
    "call_event",
    "transcript_segment",
    "tool_call",
    "recording",
    "knowledge_base",
    "document",
    "chunk",
    "analytics_daily",
    "campaign",
    "api_key",
)


def _schema_routes() -> list[tuple[str, str]]:
    schema = create_app(Settings(env="test")).openapi()
    return [(method.upper(), path) for path, ops in schema["paths"].items() for method in ops]


SCHEMA_ROUTES = _schema_routes()
ROUTE_IDS = [f"{m} {p}" for m, p in SCHEMA_ROUTES]


@dataclass
class World:
    client: httpx.AsyncClient
    sender: RecordingProducer  # the real producer; ``records`` holds every command decoded
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
async def world(settings: Settings) -> AsyncIterator[World]:
    schema = await migrated_schema(settings)
    api = settings.api.model_copy(
        update={"write_wait_s": 0.05, "jwt_secret": SecretStr("x" * 40), "rate_limit_per_s": 10_000.0}
    )
    codec = Codec.single_object()
    async with (
        recording_producer(settings.kafka, codec) as sender,
        schema_sessions(settings, schema) as sessions,
    ):
        engine = sessions.kw["bind"]
        app = create_app(
            settings.model_copy(update={"api": api}), engine=engine, producer=sender, codec=codec
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield World(client, sender, sessions)


@dataclass
class Seeded:
    tenant: Tenant
    ids: Ids


@pytest.fixture
async def tenant_a(world: World) -> Seeded:
    tenant = await make_tenant(world.sessions)
    return Seeded(tenant, await _seed(world.sessions, tenant.tenant_id))


async def _seed(sessions: async_sessionmaker[AsyncSession], tenant_id: str) -> Ids:
    """An agent with two versions, a live call with its side rows, a knowledge base, a spare key."""
    agent_id, call_id, kb_id, document_id = unique("agt"), unique("call"), unique("kb"), unique("doc")
    campaign_id = unique("cmp")
    events = call_events(tenant_id, call_id, agent_id)
    live = events[:-1]  # everything but CallEnded: the call can still be ended
    view = call_view.initial(live[0])
    for event in live:
        view = call_view.evolve(view, event)
    async with sessions() as session, session.begin():
        await insert_agent(session, tenant_id, agent_id, voices=("Puck", "Kore"))
        await session.execute(insert(models.Call).values(view.row()))
        await session.execute(insert(models.CallEvent).values([call_view.timeline_row(e) for e in live]))
        segment, tool_call, recording = live[4], live[6], live[8]
        assert isinstance(segment, TranscriptSegment)
        assert isinstance(tool_call, ToolCallRequested)
        assert isinstance(recording, RecordingAvailable)
        await session.execute(insert(models.TranscriptSegment).values(call_view.transcript_row(segment)))
        await session.execute(insert(models.ToolCall).values(call_view.tool_call_row(tool_call)))
        await session.execute(insert(models.Recording).values(call_view.recording_row(recording)))
        await session.execute(
            insert(models.KnowledgeBase).values(kb_id=kb_id, tenant_id=tenant_id, name="Help", created_at=T0)
        )
        await session.execute(
            insert(models.Document).values(
                kb_id=kb_id,
                document_id=document_id,
                tenant_id=tenant_id,
                title="Lockers",
                content_type="text/plain",
                size_bytes=40,
                chunk_count=1,
                added_at=T0,
            )
        )
        await session.execute(
            insert(models.Chunk).values(
                chunk_id=unique("chk"),
                kb_id=kb_id,
                document_id=document_id,
                tenant_id=tenant_id,
                ordinal=0,
                text="Parcel lockers are emptied every morning.",
            )
        )
        await session.execute(
            insert(models.AnalyticsDaily).values(
                tenant_id=tenant_id,
                agent_id=agent_id,
                day=T0.date(),
                calls=1,
                answered=1,
                completed=0,
                failed=0,
                interruptions=1,
                tool_calls=1,
            )
        )
        await session.execute(
            insert(dialer_models.Campaign).values(
                campaign_id=campaign_id,
                tenant_id=tenant_id,
                agent_id=agent_id,
                name="Reminders",
                total=1,
                created_at=T0,
                updated_at=T0,
            )
        )
        key_id, _ = await store.create_api_key(session, tenant_id, "viewer", "spare")
    return {
        "campaign_id": campaign_id,
        "agent_id": agent_id,
        "version": "1",
        "call_id": call_id,
        "kb_id": kb_id,
        "document_id": document_id,
        "key_id": key_id,
    }


async def _send(
    world: World, route: tuple[str, str], ids: Ids, headers: dict[str, str] | None
) -> httpx.Response:
    method, path = route
    _, extra = ROUTES[route]
    request = extra(ids)
    return await world.client.request(
        method,
        path.format(**ids),
        params=request.get("params"),
        json=request.get("json"),
        content=request.get("content"),
        headers=(headers or {}) | request.get("headers", {}),
    )


def _role_headers(tenant: Tenant, role: str) -> dict[str, str]:
    return {"admin": tenant.admin, "operator": tenant.operator, "viewer": tenant.viewer}[role]


def test_rs_every_route_in_the_openapi_schema_has_access_rules() -> None:
    assert sorted(SCHEMA_ROUTES) == sorted(ROUTES)


@pytest.mark.parametrize("route", SCHEMA_ROUTES, ids=ROUTE_IDS)
async def test_rs_route_refuses_missing_and_wrong_credentials(
    world: World, tenant_a: Seeded, route: tuple[str, str]
) -> None:
    for headers in (None, {"X-API-Key": "va_guessed"}, {"Authorization": "Bearer eyJ.forged.token"}):
        response = await _send(world, route, tenant_a.ids, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("route", SCHEMA_ROUTES, ids=ROUTE_IDS)
async def test_rs_route_needs_its_role_and_lets_it_through(
    world: World, tenant_a: Seeded, route: tuple[str, str]
) -> None:
    least, _ = ROUTES[route]
    for role in RANKS[: RANKS.index(least)]:
        refused = await _send(world, route, tenant_a.ids, _role_headers(tenant_a.tenant, role))
        assert refused.status_code == 403, (role, refused.text)
    allowed = await _send(world, route, tenant_a.ids, _role_headers(tenant_a.tenant, least))
    assert allowed.status_code in (200, 201, 202, 204), allowed.text


@pytest.mark.parametrize("route", SCHEMA_ROUTES, ids=ROUTE_IDS)
async def test_rs_route_never_shows_or_changes_another_tenants_data(
    world: World, tenant_a: Seeded, route: tuple[str, str]
) -> None:
    tenant_b = await make_tenant(world.sessions)
    a_rows = await _tenant_rows(world.sessions, tenant_a.tenant.tenant_id)
    assert all(a_rows[table] for table in SEEDED_TABLES), a_rows  # else the comparison below shows nothing
    before = len(world.sender.records)
    response = await _send(world, route, tenant_a.ids, tenant_b.admin)
    commands = world.sender.records[before:]
    a_ids = {tenant_a.ids[name] for name in AGGREGATE_FIELDS}
    assert [c for c in commands if _aggregate_ids(c) & a_ids] == []
    if "{" in route[1] or route in BODY_SCOPED:
        # A's id in the path (or the body) reads as missing, and nothing is sent.
        assert response.status_code in (404, 422), response.text
        assert commands == []
    else:
        assert response.status_code in (200, 201, 202), response.text
    asked = str(response.request.url) + response.request.content.decode(errors="replace")
    private = [v for k, v in tenant_a.ids.items() if k != "version"] + [tenant_a.tenant.tenant_id, *A_TEXTS]
    assert [value for value in private if value in response.text and value not in asked] == []
    assert await _tenant_rows(world.sessions, tenant_a.tenant.tenant_id) == a_rows


def _aggregate_ids(command: Record) -> set[str]:
    """The aggregates a command is about (a command's own tenant_id is always the caller's)."""
    return {value for name in AGGREGATE_FIELDS if isinstance(value := getattr(command, name, None), str)}


async def _tenant_rows(sessions: async_sessionmaker[AsyncSession], tenant_id: str) -> dict[str, list[str]]:
    """Every row of the tenant in every table with a tenant_id column, in a stable order."""
    async with sessions() as session:
        tables = await session.execute(
            text(
                "SELECT table_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND column_name = 'tenant_id'"
            )
        )
        out: dict[str, list[str]] = {}
        for table in tables.scalars().all():
            rows = await session.execute(
                text(f'SELECT * FROM "{table}" WHERE tenant_id = :tenant_id'), {"tenant_id": tenant_id}
            )
            out[table] = sorted(repr(sorted(row.items())) for row in rows.mappings())
        return out


async def test_rs_a_session_token_cannot_be_renewed_with_itself(world: World, tenant_a: Seeded) -> None:
    # A token got a fresh token, so a leaked one could be kept alive for ever.
    issued = await world.client.post("/api/auth/token", headers=tenant_a.tenant.viewer)
    token = issued.json()["access_token"]
    for headers in ({"Authorization": f"Bearer {token}"}, {"X-API-Key": token}):
        renewed = await world.client.post("/api/auth/token", headers=headers)
        assert renewed.status_code == 401, renewed.text
        assert renewed.headers["content-type"] == "application/problem+json"
        assert "API key" in renewed.json()["detail"]
        assert "access_token" not in renewed.json()
    # The token itself still works, and a key still gets a new one.
    assert (await world.client.get("/api/agents", headers={"Authorization": f"Bearer {token}"})).is_success
    assert (await world.client.post("/api/auth/token", headers=tenant_a.tenant.viewer)).status_code == 200


async def test_rs_session_tokens_carry_the_keys_role_and_tenant(world: World, tenant_a: Seeded) -> None:
    issued = await world.client.post("/api/auth/token", headers=tenant_a.tenant.viewer)
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    assert (await world.client.get("/api/agents", headers=bearer)).json()["items"][0]["agent_id"] == (
        tenant_a.ids["agent_id"]
    )
    refused = await world.client.post("/api/agents", json={"name": "x"}, headers=bearer)
    assert refused.status_code == 403
    other = await make_tenant(world.sessions)
    theirs = await world.client.post("/api/auth/token", headers=other.admin)
    other_bearer = {"Authorization": f"Bearer {theirs.json()['access_token']}"}
    path = f"/api/agents/{tenant_a.ids['agent_id']}"
    assert (await world.client.get(path, headers=other_bearer)).status_code == 404
