"""Tenants' signing keys (ADR 27): tool requests and call webhooks verify with their own tenant's key
derived from the platform secret, and with neither another tenant's key nor the platform secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from schemas.dialer import WebhookDeliveryAttempted
from schemas.ids import AgentId, CallId, TenantId
from streams.dialer.policy import RetryPolicy
from streams.webhooks.delivery import Webhook, deliver
from streams.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, tenant_signing_key, verify

PLATFORM = "whsec-platform"
ONE_TRY = RetryPolicy(max_attempts=1, base_s=0.01, factor=1.0, cap_s=0.01)


def test_a_tenants_key_is_hmac_sha256_of_the_label_and_tenant_under_the_platform_secret() -> None:
    expected = hmac.new(b"p", b"voiceagent webhook signing v1:acme", hashlib.sha256).hexdigest()
    assert tenant_signing_key("p", "acme") == expected
    assert len(expected) == 64


def test_keys_differ_per_tenant_and_per_platform_secret_and_are_not_the_secret() -> None:
    keys = {
        tenant_signing_key(PLATFORM, "acme"),
        tenant_signing_key(PLATFORM, "globex"),
        tenant_signing_key("another platform secret", "acme"),
    }
    assert len(keys) == 3
    assert PLATFORM not in keys


async def _delivered_to(tenant: str) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def record(attempt: WebhookDeliveryAttempted) -> None:
        return None

    hook = Webhook(
        tenant_id=TenantId(tenant),
        agent_id=AgentId("agt_1"),
        call_id=CallId("call_1"),
        url="https://hooks.example.com/call",
        event_type="call.ended",
        payload={"call_id": "call_1", "tenant_id": tenant},
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await deliver(hook, client, PLATFORM, ONE_TRY, record, allow_private=True)
    (request,) = seen
    return request


async def test_a_call_webhook_verifies_with_its_tenants_key_only() -> None:
    request = await _delivered_to("acme")
    body = request.content
    assert json.loads(body)["data"]["tenant_id"] == "acme"
    timestamp = int(request.headers[TIMESTAMP_HEADER])
    signature = request.headers[SIGNATURE_HEADER]
    now = int(time.time())
    assert verify(tenant_signing_key(PLATFORM, "acme"), timestamp, body, signature, now)
    # Another tenant's key, and the platform secret itself, do not verify it: holding your own key
    # does not let you sign as the platform towards anyone else.
    assert not verify(tenant_signing_key(PLATFORM, "globex"), timestamp, body, signature, now)
    assert not verify(PLATFORM, timestamp, body, signature, now)


async def test_two_tenants_call_webhooks_are_signed_with_different_keys() -> None:
    acme, globex = await _delivered_to("acme"), await _delivered_to("globex")
    acme_key, globex_key = tenant_signing_key(PLATFORM, "acme"), tenant_signing_key(PLATFORM, "globex")
    now = int(time.time())
    ts = int(globex.headers[TIMESTAMP_HEADER])
    assert verify(globex_key, ts, globex.content, globex.headers[SIGNATURE_HEADER], now)
    assert not verify(acme_key, ts, globex.content, globex.headers[SIGNATURE_HEADER], now)
    ts = int(acme.headers[TIMESTAMP_HEADER])
    assert not verify(globex_key, ts, acme.content, acme.headers[SIGNATURE_HEADER], now)
