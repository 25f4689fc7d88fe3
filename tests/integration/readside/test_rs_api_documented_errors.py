"""Errors as docs/api.md describes them: a cursor the lists did not issue is 400, a time filter without
a timezone (or outside UTC's range) is 422, a campaign with no number to dial is 422 listing its rows."""

from __future__ import annotations

import base64

import pytest

from tests.integration.readside.platform import insert_agent, make_tenant
from tests.integration.readside.test_rs_api_access import World, world
from tests.support.call_stream import unique

pytestmark = pytest.mark.integration
__all__ = ["world"]  # the fixture

LISTS = ("/api/calls", "/api/agents", "/api/knowledge/bases")


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "raw",
    [
        "2026-01-01T00:00:00+00:00|a\x00b",  # was 422: PostgreSQL refused the NUL
        "2026-01-01T00:00:00|x",  # was accepted, read as UTC
        "9999-12-31T23:00:00-05:00|x",  # no such instant in UTC
    ],
)
async def test_rs_a_cursor_the_api_did_not_issue_is_400(world: World, path: str, raw: str) -> None:
    tenant = await make_tenant(world.sessions)
    cursor = base64.urlsafe_b64encode(raw.encode()).decode()
    response = await world.client.get(path, params={"cursor": cursor}, headers=tenant.viewer)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("name", ["started_from", "started_to"])
@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00",  # was 200: compared as if it were UTC
        "9999-12-31T23:59:59-05:00",  # was 200: no such instant in UTC
    ],
)
async def test_rs_a_call_time_filter_without_a_timezone_or_outside_utc_is_422(
    world: World, name: str, value: str
) -> None:
    tenant = await make_tenant(world.sessions)
    response = await world.client.get("/api/calls", params={name: value}, headers=tenant.viewer)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert name in response.text


async def test_rs_call_time_filters_with_a_timezone_are_accepted(world: World) -> None:
    tenant = await make_tenant(world.sessions)
    params = {"started_from": "2026-01-01T00:00:00+01:00", "started_to": "2026-01-02T00:00:00Z"}
    response = await world.client.get("/api/calls", params=params, headers=tenant.viewer)
    assert response.status_code == 200, response.text


async def test_rs_a_campaign_whose_rows_are_all_bad_is_422_with_the_rows_listed(world: World) -> None:
    tenant, agent_id = await make_tenant(world.sessions), unique("agt")
    async with world.sessions() as session, session.begin():
        await insert_agent(session, tenant.tenant_id, agent_id, voices=("Puck",))
    body = {"agent_id": agent_id, "numbers": ["0612345678", "+31612345678x"]}
    response = await world.client.post("/api/campaigns", json=body, headers=tenant.operator)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [(r["row"], r["value"]) for r in problem["rows"]] == [(1, "0612345678"), (2, "+31612345678x")]
    assert all(r["message"] for r in problem["rows"])
    assert "errors" not in problem  # a problem's errors name fields; these are rows
