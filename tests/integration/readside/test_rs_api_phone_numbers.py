"""A phone number routes to one agent: the API refuses a number another active agent holds, and
tells another tenant only that it is taken (the last publisher used to take any tenant's number)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from infra.settings import Settings
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.platform import Tenant, insert_agent, make_tenant
from tests.support.call_stream import unique
from tests.support.recording_producer import RecordingProducer, recording_producer

pytestmark = pytest.mark.integration

NUMBER = "+14155550177"


@dataclass
class Numbers:
    client: httpx.AsyncClient
    sender: RecordingProducer  # the real producer, keeping what was sent
    owner: Tenant
    other: Tenant
    holder: str  # the owner's agent that routes NUMBER
    others_agent: str


@pytest.fixture(scope="module")
async def numbers(settings: Settings) -> AsyncIterator[Numbers]:
    schema = await migrated_schema(settings)
    api = settings.api.model_copy(
        update={"write_wait_s": 0.05, "rate_limit_per_s": 10_000.0, "jwt_secret": SecretStr("x" * 40)}
    )
    async with recording_producer(settings.kafka) as sender, schema_sessions(settings, schema) as sessions:
        app = create_app(
            settings.model_copy(update={"api": api}), engine=sessions.kw["bind"], producer=sender
        )
        owner, other = await make_tenant(sessions), await make_tenant(sessions)
        holder, others_agent = unique("agt"), unique("agt")
        async with sessions() as session, session.begin():
            await insert_agent(session, owner.tenant_id, holder, voices=("Puck",), phone_numbers=(NUMBER,))
            await insert_agent(session, other.tenant_id, others_agent, voices=("Puck",))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield Numbers(client, sender, owner, other, holder, others_agent)


def _config(*phone_numbers: str) -> dict[str, object]:
    return {"system_prompt": "Be brief.", "phone_numbers": list(phone_numbers)}


async def test_another_tenant_cannot_take_a_number_by_creating_or_publishing(numbers: Numbers) -> None:
    before = len(numbers.sender.sent)
    created = await numbers.client.post(
        "/api/agents", json={"name": "hijack", "config": _config(NUMBER)}, headers=numbers.other.admin
    )
    published = await numbers.client.post(
        f"/api/agents/{numbers.others_agent}/versions",
        json={"expected_version": 1, "config": _config("+14155550100", NUMBER)},
        headers=numbers.other.admin,
    )
    for response in (created, published):
        assert response.status_code == 409, response.text[:300]
        detail = response.json()["detail"]
        assert f"{NUMBER} is in use by another account" in detail
        assert numbers.holder not in detail  # another tenant's agent id is not told
    assert len(numbers.sender.sent) == before


async def test_the_same_tenant_is_told_which_agent_holds_it(numbers: Numbers) -> None:
    response = await numbers.client.post(
        "/api/agents", json={"name": "second desk", "config": _config(NUMBER)}, headers=numbers.owner.admin
    )
    assert response.status_code == 409, response.text[:300]
    assert f"routed to agent {numbers.holder}" in response.json()["detail"]


async def test_the_holder_publishes_a_new_version_with_its_own_number(numbers: Numbers) -> None:
    before = len(numbers.sender.sent)
    response = await numbers.client.post(
        f"/api/agents/{numbers.holder}/versions",
        json={"expected_version": 1, "config": _config(NUMBER)},
        headers=numbers.owner.admin,
    )
    assert response.status_code in (201, 202), response.text[:300]
    assert len(numbers.sender.sent) == before + 1
