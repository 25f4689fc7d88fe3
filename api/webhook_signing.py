"""/api/webhook-signing-key: the caller's tenant's keys for verifying our signed requests (ADR 27).

Webhook tool requests and call webhooks are signed with a key per tenant, derived from the
platform's secrets (``streams.webhooks.signing.tenant_signing_key``); nothing is stored. The
API therefore needs both platform secrets, and refuses to start without them outside dev and test.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from api.deps import Admin
from infra.settings import Settings, is_placeholder_secret
from streams.webhooks.settings import WebhookSettings
from streams.webhooks.signing import SIGNING_ALGORITHM, tenant_signing_key

PATH = "/api/webhook-signing-key"


class WebhookSigningKey(BaseModel):
    algorithm: str = Field(
        description='how X-Voice-Signature is made: "v1=" + hex HMAC-SHA256 of "<timestamp>." + body, '
        "keyed with the key string's bytes"
    )
    tool_key: str = Field(description="verifies the requests of this tenant's agents' webhook tools")
    call_webhook_key: str = Field(
        description="verifies this tenant's call webhooks (call.started, call.ended)"
    )


@dataclass(frozen=True, slots=True)
class PlatformSecrets:
    """The secrets tenants' keys are derived from: never sent to anyone."""

    tools: str
    call_webhooks: str


def platform_secrets(settings: Settings, hooks: WebhookSettings) -> PlatformSecrets:
    """Both platform secrets; outside dev and test, refused when either is unset."""
    secrets = PlatformSecrets(
        tools=settings.streams.tool_webhook_secret.get_secret_value(),
        call_webhooks=hooks.secret.get_secret_value(),
    )
    if settings.env not in ("dev", "test"):
        names = (
            ("VOICE_STREAMS__TOOL_WEBHOOK_SECRET", secrets.tools),
            ("VOICE_WEBHOOKS__SECRET", secrets.call_webhooks),
        )
        missing = [name for name, value in names if is_placeholder_secret(value)]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} must be set to a real secret (not empty or a known "
                f"default) for env={settings.env!r}: the API derives "
                "each tenant's webhook signing keys from them"
            )
    return secrets


def router_for(settings: Settings, hooks: WebhookSettings | None = None) -> APIRouter:
    """The route, holding the platform secrets (read from VOICE_WEBHOOKS__* unless given)."""
    secrets = platform_secrets(settings, hooks if hooks is not None else WebhookSettings())
    router = APIRouter(tags=["webhooks"])

    @router.get(PATH, response_model=WebhookSigningKey)
    async def webhook_signing_key(principal: Admin, response: Response) -> WebhookSigningKey:
        """The caller's tenant's signing keys (admin only): verify our requests to your endpoints."""
        response.headers["Cache-Control"] = "no-store"
        return WebhookSigningKey(
            algorithm=SIGNING_ALGORITHM,
            tool_key=tenant_signing_key(secrets.tools, principal.tenant_id),
            call_webhook_key=tenant_signing_key(secrets.call_webhooks, principal.tenant_id),
        )

    return router
