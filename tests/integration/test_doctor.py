"""`voiceagent doctor` beside a running dev stack, a stopped one, and one that died."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from rich.console import Console

from infra.settings import Settings
from tests.support.dev_addresses import dev_addresses
from voiceagent.doctor import run_doctor

pytestmark = pytest.mark.integration


def _embedded(tmp_path: Path) -> Settings:
    return Settings.model_validate({"env": "dev", "data_dir": str(tmp_path)}).model_copy(
        update={
            "kafka": Settings().kafka.model_copy(update={"bootstrap": None}),
            "database": Settings().database.model_copy(update={"url": None}),
        }
    )


def _dev_json(tmp_path: Path, bootstrap: str, database_url: str) -> None:
    dev_addresses(bootstrap=bootstrap, database_url=database_url).write(tmp_path)


def _doctor(settings: Settings) -> tuple[int, str]:
    console = Console(record=True, width=250)
    code = run_doctor(settings, console)
    return code, console.export_text()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_doctor_with_no_platform_running_says_so(tmp_path: Path) -> None:
    code, text = _doctor(_embedded(tmp_path))
    assert code == 0
    assert text.count("not running now") == 2


def test_doctor_checks_the_running_dev_stacks_broker_and_database(settings: Settings, tmp_path: Path) -> None:
    assert settings.kafka.bootstrap
    assert settings.database.url
    _dev_json(tmp_path, settings.kafka.bootstrap, settings.database.url)
    code, text = _doctor(_embedded(tmp_path))
    assert f"the running dev stack's embedded broker, {settings.kafka.bootstrap} answers" in text
    assert "reachable" in text
    assert code == 0, text


def test_doctor_fails_on_a_dev_json_left_by_a_platform_that_died(tmp_path: Path) -> None:
    port = _closed_port()
    _dev_json(tmp_path, f"127.0.0.1:{port}", f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    code, text = _doctor(_embedded(tmp_path))
    assert code == 1
    assert "did `voiceagent dev` stop without cleaning up?" in text
