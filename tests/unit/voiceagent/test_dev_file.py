"""dev.json: one from another version, or damaged, is a message saying what to do, not a traceback."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.dev_addresses import dev_addresses
from voiceagent.cli import app
from voiceagent.devfile import DevAddresses

FULL = dataclasses.asdict(dev_addresses())

UNREADABLE = {
    "another-version": '{"bootstrap": 1}',
    "a-field-of-another-type": json.dumps(FULL | {"bootstrap": 1}),
    "an-unknown-field": json.dumps(FULL | {"broker": "127.0.0.1:1"}),
    "not-an-object": "[]",
    "damaged": "{not json",
}


def test_what_dev_writes_it_reads(tmp_path: Path) -> None:
    dev_addresses(twilio_standin_url="http://127.0.0.1:2").write(tmp_path)
    assert DevAddresses.read(tmp_path) == dev_addresses(twilio_standin_url="http://127.0.0.1:2")


@pytest.mark.parametrize("content", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_dev_json_is_one_error_saying_to_restart_dev(tmp_path: Path, content: str) -> None:
    (tmp_path / "dev.json").write_text(content)
    with pytest.raises(ValueError, match="restart `voiceagent dev`"):
        DevAddresses.read(tmp_path)


@pytest.mark.parametrize(
    ("command", "code"),
    [(["call", "timeline", "abc"], 2), (["call", "simulate", "--agent", "demo"], 1)],
    ids=["timeline", "simulate"],
)
def test_a_dev_json_of_another_version_is_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], code: int
) -> None:
    for name in ("VOICE_KAFKA__BOOTSTRAP", "VOICE_DATABASE__URL"):
        monkeypatch.setenv(name, "")  # setenv first: the undo removes what the CLI may set
        monkeypatch.delenv(name)
    monkeypatch.setenv("VOICE_DATA_DIR", str(tmp_path))
    (tmp_path / "dev.json").write_text('{"bootstrap": 1}')
    result = CliRunner().invoke(app, command)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code
    assert "restart `voiceagent dev`" in " ".join(result.output.split())
