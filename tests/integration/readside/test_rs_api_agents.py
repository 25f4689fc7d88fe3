"""API end to end for agents: command, writer, events, projection, read back; versions and If-Match."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from infra.settings import Settings
from schemas.codec import Codec
from tests.integration.readside.platform import Tenant, make_tenant, platform

pytestmark = pytest.mark.integration

CONFIG = {
    "system_prompt": "You are the front desk of Acme Dental. Be brief.",
    "voice": "Puck",
    "language": "en-US",
    "tools": [
        {
            "name": "book_slot",
            "description": "Book an appointment",
            "parameters": {
                "type": "object",
                "properties": {"when": {"type": "string"}},
                "required": ["when"],
            },
            "webhook_url": "https://hooks.acme-dental.example/book",
            "timeout_ms": 3000,
        }
    ],
    "phone_numbers": ["+14155550100"],
}


@pytest.fixture
async def client(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    codec: Codec,
) -> AsyncIterator[httpx.AsyncClient]:
    slow = settings.model_copy(update={"api": settings.api.model_copy(update={"write_wait_s": 20.0})})
    async with platform(slow, engine, sessions, producer, codec) as client:
        yield client


@pytest.fixture
async def tenant(sessions: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessions)


async def test_rs_agent_create_publish_read_back_with_versions(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        "/api/agents", json={"name": "Front desk", "config": CONFIG}, headers=tenant.admin
    )
    assert created.status_code == 201, created.text
    agent_id = created.json()["agent_id"]
    assert created.headers["ETag"] == '"1"'
    assert created.headers["Location"] == f"/api/agents/{agent_id}"

    read = await client.get(f"/api/agents/{agent_id}", headers=tenant.viewer)
    assert read.status_code == 200
    tool = read.json()["config"]["tools"][0]
    assert (tool["name"], tool["webhook_url"], tool["timeout_ms"]) == (
        "book_slot",
        "https://hooks.acme-dental.example/book",
        3000,
    )
    assert read.json()["current_version"] == 1

    v2 = await client.post(
        f"/api/agents/{agent_id}/versions",
        json={"config": CONFIG | {"voice": "Kore"}},
        headers=tenant.admin | {"If-Match": read.headers["ETag"]},
    )
    assert v2.status_code == 201, v2.text
    assert (v2.json()["version"], v2.headers["ETag"]) == (2, '"2"')

    stale = await client.post(
        f"/api/agents/{agent_id}/versions",
        json={"config": CONFIG | {"voice": "Charon"}},
        headers=tenant.admin | {"If-Match": '"1"'},
    )
    assert stale.status_code == 412, stale.text
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["code"] == "version_conflict"

    versions = await client.get(f"/api/agents/{agent_id}/versions", headers=tenant.viewer)
    assert [v["version"] for v in versions.json()] == [1, 2]
    diff = await client.get(
        f"/api/agents/{agent_id}/diff", params={"from": 1, "to": 2}, headers=tenant.viewer
    )
    assert diff.json()["changes"] == [{"path": "voice", "before": "Puck", "after": "Kore"}]

    rolled = await client.post(
        f"/api/agents/{agent_id}/rollback", json={"to_version": 1}, headers=tenant.admin | {"If-Match": '"2"'}
    )
    assert rolled.status_code == 201, rolled.text
    assert (rolled.json()["version"], rolled.json()["config"]["voice"]) == (3, "Puck")
    assert rolled.json()["config"]["tools"] == read.json()["config"]["tools"]

    archived = await client.delete(f"/api/agents/{agent_id}", headers=tenant.admin)
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "archived"


async def test_rs_invalid_agent_config_gets_field_level_422(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    bad = CONFIG | {
        "voice": "Robot",
        "system_prompt": "x" * 20_001,
        "tools": [{"name": "t", "parameters": '{"type": "object", "properties": {"a": {"type": "banana"}}}'}],
    }
    response = await client.post("/api/agents", json={"name": "Bad", "config": bad}, headers=tenant.admin)
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"config.voice", "config.system_prompt", "config.tools[0].parameters_json"}


async def test_rs_transfer_numbers_round_trip_and_a_non_e164_one_is_a_422(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # transfer_call dials only these: a number of the caller's choosing must never get in.
    base = CONFIG | {"phone_numbers": []}  # a routed number is one agent's: the others' tests use it
    for bad in ("14155550123", "+1 415 555 0123", "sip:desk@example.com", "+19005550199</Dial>"):
        response = await client.post(
            "/api/agents",
            json={"name": "Bad", "config": base | {"transfer_numbers": ["+14155550123", bad]}},
            headers=tenant.admin,
        )
        assert response.status_code == 422, (bad, response.text)
        assert [e["field"] for e in response.json()["errors"]] == ["config.transfer_numbers[1]"], bad
    created = await client.post(
        "/api/agents",
        json={"name": "Desk", "config": base | {"transfer_numbers": ["+14155550123"]}},
        headers=tenant.admin,
    )
    assert created.status_code == 201, created.text
    agent_id = created.json()["agent_id"]
    read = await client.get(f"/api/agents/{agent_id}", headers=tenant.viewer)
    assert read.json()["config"]["transfer_numbers"] == ["+14155550123"]
    v2 = await client.post(
        f"/api/agents/{agent_id}/versions",
        json={"config": base | {"transfer_numbers": ["+14155550123", "+442071838750"]}},
        headers=tenant.admin | {"If-Match": read.headers["ETag"]},
    )
    assert v2.status_code == 201, v2.text
    assert v2.json()["config"]["transfer_numbers"] == ["+14155550123", "+442071838750"]
    rolled = await client.post(
        f"/api/agents/{agent_id}/rollback", json={"to_version": 1}, headers=tenant.admin | {"If-Match": '"2"'}
    )
    assert rolled.status_code == 201, rolled.text
    assert rolled.json()["config"]["transfer_numbers"] == ["+14155550123"]


BAD_TOOL_PARAMETERS = {
    "a property type that is an object": {
        "type": "object",
        "properties": {"w": {"type": {"format": "date"}}},
    },
    "a type list holding a list": {"type": "object", "properties": {"n": {"type": [["integer"]]}}},
    "schema text nested 100000 deep": "[" * 100_000 + "]" * 100_000,
    "a key Gemini refuses": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"},
}


@pytest.mark.parametrize("parameters", BAD_TOOL_PARAMETERS.values(), ids=BAD_TOOL_PARAMETERS.keys())
async def test_rs_a_tool_schema_that_cannot_work_is_a_422_not_a_500(
    client: httpx.AsyncClient, tenant: Tenant, parameters: object
) -> None:
    bad = CONFIG | {"tools": [{"name": "book", "parameters": parameters}]}
    response = await client.post("/api/agents", json={"name": "Bad", "config": bad}, headers=tenant.admin)
    assert response.status_code == 422, response.text[:300]
    assert [e["field"] for e in response.json()["errors"]] == ["config.tools[0].parameters_json"]


async def test_rs_auth_roles_and_tenant_isolation(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    other = await make_tenant(sessions)
    created = await client.post("/api/agents", json={"name": "Mine", "config": CONFIG}, headers=tenant.admin)
    agent_id = created.json()["agent_id"]

    assert (await client.get("/api/agents")).status_code == 401
    assert (await client.get("/api/agents", headers={"X-API-Key": "va_wrong"})).status_code == 401
    assert (await client.get("/api/agents", headers={"Authorization": "Bearer nope"})).status_code == 401
    viewer_write = await client.post("/api/agents", json={"name": "x"}, headers=tenant.viewer)
    assert viewer_write.status_code == 403
    assert (await client.get(f"/api/agents/{agent_id}", headers=other.admin)).status_code == 404
    theirs = await client.get("/api/agents", headers=other.admin)
    assert all(a["agent_id"] != agent_id for a in theirs.json()["items"])
    hijack = await client.post(
        f"/api/agents/{agent_id}/versions", json={"config": CONFIG}, headers=other.admin | {"If-Match": '"1"'}
    )
    assert hijack.status_code == 404

    key = await client.post("/api/keys", json={"name": "temp", "role": "viewer"}, headers=tenant.admin)
    secret, key_id = key.json()["key"], key.json()["key_id"]
    assert (await client.get("/api/agents", headers={"X-API-Key": secret})).status_code == 200
    assert (await client.delete(f"/api/keys/{key_id}", headers=tenant.admin)).status_code == 204
    assert (await client.get("/api/agents", headers={"X-API-Key": secret})).status_code == 401
