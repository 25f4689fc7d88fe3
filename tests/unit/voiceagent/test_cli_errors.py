"""The voiceagent command: an unreachable broker or database is a message and exit 3; a DB refusal exit 1."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.exc import OperationalError

from voiceagent import cli


def _failing(error: Exception) -> object:
    def app() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (KafkaConnectionError("Unable to bootstrap"), "VOICE_KAFKA__BOOTSTRAP"),
        (OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")), "VOICE_DATABASE__URL"),
    ],
)
def test_an_outage_is_a_plain_message_and_exit_code_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception, says: str
) -> None:
    monkeypatch.setattr(cli, "app", _failing(error))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 3
    out = capsys.readouterr().out
    assert says in out
    assert "Traceback" not in out


class _StatementTimeoutError(Exception):
    sqlstate = "57014"  # query_canceled: the server is there and refused this statement


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            OperationalError("SELECT 1", {}, _StatementTimeoutError("canceling statement")),
            "the database refused",
        ),
    ],
)
def test_a_refusal_by_a_reachable_service_is_not_called_an_outage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception, says: str
) -> None:
    monkeypatch.setattr(cli, "app", _failing(error))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert says in out
    assert "could not be reached" not in out
