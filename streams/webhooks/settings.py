"""The call-webhook worker's settings (VOICE_WEBHOOKS__*), read by the worker and by the API.

The API reads ``secret`` too: it derives each tenant's signing key from it for
``GET /api/webhook-signing-key`` (ADR 27).
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.settings import SETTINGS_SOURCES


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(**SETTINGS_SOURCES, env_prefix="VOICE_WEBHOOKS__")

    secret: SecretStr = SecretStr("")
    """The platform secret each tenant's call-webhook signing key is derived from; never sent."""
    group_id: str = "voice-webhooks"
    max_attempts: int = 6
    backoff_base_s: float = 2.0
    backoff_factor: float = 3.0
    backoff_cap_s: float = 600.0
    reach_private: bool | None = None
    """Deliver to loopback, private and link-local addresses; None: only in dev and test."""
