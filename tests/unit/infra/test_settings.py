"""Settings: derived locations and the refusal of default secrets outside dev."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from infra.settings import EdgeSettings, Settings


def test_recordings_go_under_the_data_dir_by_default() -> None:
    settings = Settings(env="test", data_dir=Path("/srv/voice"))
    assert settings.recordings_target == "/srv/voice/recordings"


def test_a_recordings_dir_replaces_the_default() -> None:
    edge = EdgeSettings(recordings_dir=Path("/rec"))
    settings = Settings(env="test", data_dir=Path("/srv/voice"), edge=edge)
    assert settings.recordings_target == "/rec"


def test_a_recordings_url_wins_over_any_dir() -> None:
    edge = EdgeSettings(recordings_dir=Path("/rec"), recordings_url="s3://bucket/calls")
    assert Settings(env="test", edge=edge).recordings_target == "s3://bucket/calls"


def test_prod_refuses_empty_secrets_and_names_each_variable() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env="prod")
    message = str(refused.value)
    for name in ("VOICE_TWILIO__AUTH_TOKEN", "VOICE_GEMINI__API_KEY", "VOICE_API__BOOTSTRAP_API_KEY"):
        assert name in message


def test_prod_accepts_real_secrets() -> None:
    settings = Settings.model_validate(
        {
            "env": "prod",
            "twilio": {"auth_token": SecretStr("t0k3n-real")},
            "gemini": {"api_key": SecretStr("AIza-real-key")},
            "api": {"bootstrap_api_key": SecretStr("vk_real_admin_key")},
        }
    )
    assert settings.env == "prod"


@pytest.mark.parametrize(
    ("name", "value"), [("rate_limit_per_s", 0), ("rate_limit_per_s", -1), ("rate_limit_burst", 0)]
)
def test_a_rate_limit_that_would_refuse_everything_or_divide_by_zero_is_refused_at_start(
    name: str, value: float
) -> None:
    # 0 read as "no limit" by an operator made every request after the burst a 500.
    with pytest.raises(ValidationError, match=name):
        Settings.model_validate({"api": {name: value}})
