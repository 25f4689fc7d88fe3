"""`voiceagent doctor` flags the platform's webhook secrets that production needs and dev does not."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from infra.settings import Settings
from streams.webhooks.settings import WebhookSettings
from voiceagent.doctor import FAIL, OK, _platform_secrets


def _settings(env: str, tool_secret: str = "") -> Settings:
    values: dict[str, Any] = {
        "env": env,
        "twilio": {"auth_token": SecretStr("t0k3n-real")},
        "gemini": {"api_key": SecretStr("AIza-real-key")},
        "api": {"bootstrap_api_key": SecretStr("vk_real_admin_key")},
        "streams": {"tool_webhook_secret": SecretStr(tool_secret)},
    }
    return Settings.model_validate(values)


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_outside_dev_missing_webhook_secrets_fail_and_are_named(env: str) -> None:
    name, result, words = _platform_secrets(_settings(env), WebhookSettings(secret=SecretStr(" ")))
    assert (name, result) == ("webhook secrets", FAIL)
    assert "VOICE_STREAMS__TOOL_WEBHOOK_SECRET and VOICE_WEBHOOKS__SECRET must be set" in words


def test_outside_dev_one_missing_secret_is_the_one_named() -> None:
    _name, result, words = _platform_secrets(_settings("prod", "tools-secret"), WebhookSettings())
    assert result == FAIL
    assert "VOICE_WEBHOOKS__SECRET" in words
    assert "TOOL_WEBHOOK_SECRET" not in words


def test_outside_dev_both_secrets_set_is_ok() -> None:
    hooks = WebhookSettings(secret=SecretStr("hooks-secret"))
    assert _platform_secrets(_settings("prod", "tools-secret"), hooks)[1] == OK


@pytest.mark.parametrize("env", ["dev", "test"])
def test_in_dev_and_test_unset_webhook_secrets_are_fine(env: str) -> None:
    assert _platform_secrets(_settings(env), WebhookSettings())[1] == OK


def test_outside_dev_a_placeholder_secret_fails_as_the_services_refuse_it() -> None:
    hooks = WebhookSettings(secret=SecretStr("changeme"))
    _name, result, words = _platform_secrets(_settings("prod", "Secret"), hooks)
    assert result == FAIL
    assert "VOICE_STREAMS__TOOL_WEBHOOK_SECRET and VOICE_WEBHOOKS__SECRET" in words
