"""Every settings class reads .env like Settings does, an empty value is unset, ports are ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from infra.settings import Settings
from streams.dialer.config import DialerSettings
from streams.summary.__main__ import SummarySettings
from streams.webhooks.settings import WebhookSettings


@pytest.fixture
def env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own, and no VOICE_* variable from the caller's environment."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("VOICE_")]:
        monkeypatch.delenv(name)
    return tmp_path


def _dotenv(directory: Path, *lines: str) -> None:
    (directory / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_the_dialer_reads_its_do_not_call_list_from_dotenv(env_dir: Path) -> None:
    # Before, only Settings read .env: the dialer called the numbers listed there.
    _dotenv(env_dir, 'VOICE_DIALER__DO_NOT_CALL=["+15550100001"]', "VOICE_DIALER__MAX_ATTEMPTS=7")
    dialer = DialerSettings()
    assert dialer.do_not_call == ["+15550100001"]
    assert dialer.max_attempts == 7
    assert "+15550100001" in dialer.options("+15550100000").do_not_call


def test_the_webhooks_worker_reads_its_secret_from_dotenv(env_dir: Path) -> None:
    _dotenv(env_dir, "VOICE_WEBHOOKS__SECRET=from-dotenv", "VOICE_WEBHOOKS__MAX_ATTEMPTS=2")
    webhooks = WebhookSettings()
    assert webhooks.secret.get_secret_value() == "from-dotenv"
    assert webhooks.max_attempts == 2


def test_the_summary_worker_reads_its_settings_from_dotenv(env_dir: Path) -> None:
    _dotenv(env_dir, "VOICE_SUMMARY__MAX_IN_FLIGHT=3", "VOICE_SUMMARY__GROUP_ID=summary-x")
    summary = SummarySettings()
    assert (summary.max_in_flight, summary.group_id) == (3, "summary-x")


@pytest.mark.parametrize("cls", [Settings, DialerSettings, WebhookSettings, SummarySettings])
def test_every_settings_class_reads_the_same_sources(cls: type[BaseSettings]) -> None:
    config = cls.model_config
    assert (config.get("env_file"), config.get("env_file_encoding")) == (".env", "utf-8")
    assert config.get("env_ignore_empty") is True


def test_an_empty_broker_or_database_address_starts_the_embedded_one(
    env_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `VOICE_DATABASE__URL=` used to be "" (set): dev skipped the embedded database and
    # `voiceagent migrate` failed with a traceback about sqlalchemy.url.
    monkeypatch.setenv("VOICE_DATABASE__URL", "")
    _dotenv(env_dir, "VOICE_KAFKA__BOOTSTRAP=")
    settings = Settings()
    assert settings.uses_embedded_database
    assert settings.uses_embedded_broker


def test_empty_values_in_the_services_settings_keep_their_defaults(
    env_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICE_DIALER__MAX_ATTEMPTS", "")
    _dotenv(env_dir, "VOICE_SUMMARY__MAX_IN_FLIGHT=", "VOICE_WEBHOOKS__MAX_ATTEMPTS=")
    assert DialerSettings().max_attempts == DialerSettings.model_fields["max_attempts"].default
    assert SummarySettings().max_in_flight == SummarySettings.model_fields["max_in_flight"].default
    assert WebhookSettings().max_attempts == WebhookSettings.model_fields["max_attempts"].default


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VOICE_API__PORT", "99999"),
        ("VOICE_API__PORT", "0"),
        ("VOICE_EDGE__PORT", "-5"),
        ("VOICE_EDGE__PORT", "65536"),
        ("VOICE_EDGE__BRIDGE_PORT", "0"),
    ],
)
def test_a_port_out_of_range_is_refused_at_start(
    env_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    # Before, dev started with them and died in socket code (OverflowError).
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_ports_at_the_ends_of_the_range_are_accepted(env_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_API__PORT", "1")
    monkeypatch.setenv("VOICE_EDGE__PORT", "65535")
    settings = Settings()
    assert (settings.api.port, settings.edge.port) == (1, 65535)
