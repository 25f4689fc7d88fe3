"""GET /api/webhook-signing-key (ADR 27): a tenant's admin reads its own tenant's signing keys, which
verify the tool requests and call webhooks signed for that tenant; other roles get 403, other tenants
other keys, and the API refuses to start outside dev and test without the platform secrets."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from infra.settings import Settings
from schemas.agents import ToolSpec
from schemas.dialer import WebhookDeliveryAttempted
from schemas.ids import AgentId, CallId, TenantId
from streams.dialer.policy import RetryPolicy
from streams.sessions.webhook_tool import ToolInvocation, call_webhook
from streams.webhooks.delivery import Webhook, deliver
from streams.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, tenant_signing_key, verify
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.platform import make_tenant

pytestmark = pytest.mark.integration

PATH = "/api/webhook-signing-key"
TOOL_SECRET = "tool-platform-secret"
CALL_SECRET = "call-platform-secret"


@dataclass
class Api:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    schema = await migrated_schema(settings)
    streams = settings.streams.model_copy(update={"tool_webhook_secret": SecretStr(TOOL_SECRET)})
    configured = settings.model_copy(update={"streams": streams})
    async with schema_sessions(settings, schema) as sessions:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("VOICE_WEBHOOKS__SECRET", CALL_SECRET)  # read once, by create_app
            # No producer given: the lifespan starts its own, on the session's real broker.
            app = create_app(configured, engine=sessions.kw["bind"])
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield Api(client, sessions)


async def test_rs_an_admin_reads_its_own_tenants_keys(api: Api) -> None:
    tenant = await make_tenant(api.sessions)
    response = await api.client.get(PATH, headers=tenant.admin)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "algorithm": "HMAC-SHA256",
        "tool_key": tenant_signing_key(TOOL_SECRET, tenant.tenant_id),
        "call_webhook_key": tenant_signing_key(CALL_SECRET, tenant.tenant_id),
    }
    assert TOOL_SECRET not in response.text
    assert CALL_SECRET not in response.text


@pytest.mark.parametrize("role", ["operator", "viewer"])
async def test_rs_only_an_admin_may_read_the_keys(api: Api, role: str) -> None:
    tenant = await make_tenant(api.sessions)
    headers = tenant.operator if role == "operator" else tenant.viewer
    response = await api.client.get(PATH, headers=headers)
    assert response.status_code == 403, response.text
    assert "tool_key" not in response.text
    assert (await api.client.get(PATH)).status_code == 401


async def test_rs_two_tenants_get_different_keys(api: Api) -> None:
    a, b = await make_tenant(api.sessions), await make_tenant(api.sessions)
    keys_a = (await api.client.get(PATH, headers=a.admin)).json()
    keys_b = (await api.client.get(PATH, headers=b.admin)).json()
    assert keys_a["tool_key"] != keys_b["tool_key"]
    assert keys_a["call_webhook_key"] != keys_b["call_webhook_key"]
    assert keys_a["tool_key"] != keys_a["call_webhook_key"]


async def test_rs_the_keys_read_verify_the_tenants_requests_and_not_anothers(api: Api) -> None:
    a, b = await make_tenant(api.sessions), await make_tenant(api.sessions)
    keys_a = (await api.client.get(PATH, headers=a.admin)).json()
    keys_b = (await api.client.get(PATH, headers=b.admin)).json()
    seen: list[httpx.Request] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async def record(attempt: WebhookDeliveryAttempted) -> None:
        return None

    spec = ToolSpec(
        name="book", description="Book", parameters_json="{}", webhook_url="https://t.example/book"
    )
    invocation = ToolInvocation(
        tenant_id=a.tenant_id, agent_id="agt", call_id="call", tool_call_id="fc", name="book", arguments={}
    )
    hook = Webhook(
        tenant_id=TenantId(a.tenant_id),
        agent_id=AgentId("agt"),
        call_id=CallId("call"),
        url="https://t.example/calls",
        event_type="call.started",
        payload={},
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        await call_webhook(client, spec, invocation, secret=TOOL_SECRET, allow_private=True)
        once = RetryPolicy(max_attempts=1, base_s=0.01, factor=1.0, cap_s=0.01)
        assert await deliver(hook, client, CALL_SECRET, once, record, allow_private=True)
    tool_request, call_request = seen
    now = int(time.time())
    for request, name in ((tool_request, "tool_key"), (call_request, "call_webhook_key")):
        signed = (int(request.headers[TIMESTAMP_HEADER]), request.content, request.headers[SIGNATURE_HEADER])
        assert verify(keys_a[name], *signed, now=now)
        assert not verify(keys_b[name], *signed, now=now)


PROD = {
    "env": "prod",
    "twilio": {"auth_token": "t0k3n-real"},
    "gemini": {"api_key": "AIza-real-key"},
    "api": {"bootstrap_api_key": "vk_real_admin_key"},
}


def test_rs_the_api_refuses_to_start_outside_dev_without_the_platform_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VOICE_WEBHOOKS__SECRET", raising=False)
    with pytest.raises(ValueError, match="VOICE_STREAMS__TOOL_WEBHOOK_SECRET and VOICE_WEBHOOKS__SECRET"):
        create_app(Settings.model_validate(PROD))
    with_tool_secret = Settings.model_validate(PROD | {"streams": {"tool_webhook_secret": "k"}})
    with pytest.raises(ValueError, match="VOICE_WEBHOOKS__SECRET"):
        create_app(with_tool_secret)
    monkeypatch.setenv("VOICE_WEBHOOKS__SECRET", "w")
    assert PATH in create_app(with_tool_secret).openapi()["paths"]
