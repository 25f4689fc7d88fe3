"""`python -m streams.webhooks`: deliver agents' call webhooks (VOICE_WEBHOOKS__* settings)."""

from __future__ import annotations

import asyncio
import logging

from infra.process import stop_on_signals
from infra.settings import Settings, is_placeholder_secret
from streams.dialer.policy import RetryPolicy
from streams.webhooks.runner import WebhookWorker
from streams.webhooks.settings import WebhookSettings

__all__ = ["WebhookSettings", "run"]  # WebhookSettings: voiceagent.freshness reads its group id here


async def run() -> None:
    settings, hooks = Settings(), WebhookSettings()
    logging.basicConfig(level=settings.log_level)
    if settings.env not in ("dev", "test") and is_placeholder_secret(hooks.secret.get_secret_value()):
        raise SystemExit("VOICE_WEBHOOKS__SECRET is empty or a known default: set a real secret outside dev")
    policy = RetryPolicy(
        max_attempts=hooks.max_attempts,
        base_s=hooks.backoff_base_s,
        factor=hooks.backoff_factor,
        cap_s=hooks.backoff_cap_s,
    )
    stop = stop_on_signals()
    reach_private = (
        hooks.reach_private if hooks.reach_private is not None else settings.env in ("dev", "test")
    )
    worker = WebhookWorker(
        settings, hooks.secret.get_secret_value(), policy, hooks.group_id, allow_private=reach_private
    )
    await worker.run(stop)


if __name__ == "__main__":
    asyncio.run(run())
