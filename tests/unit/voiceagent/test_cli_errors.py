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


class _StatementTimeoutError(Exception):
    sqlstate = "57014"  # query_canceled: the server is there and refused this statement


@pytest.mark.parametrize(
    ("error", "code", "says", "never_says"),
    [
        # An outage: a plain message and exit code 3.
        (KafkaConnectionError("Unable to bootstrap"), 3, "VOICE_KAFKA__BOOTSTRAP", "Traceback"),
        (
            OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")),
            3,
            "VOICE_DATABASE__URL",
            "Traceback",
        ),
        # A refusal by a reachable service is not called an outage: exit code 1.
        (
            OperationalError("SELECT 1", {}, _StatementTimeoutError("canceling statement")),
            1,
            "the database refused",
            "could not be reached",
        ),
    ],
)
def test_a_service_failure_is_a_plain_message_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int,
    says: str,
    never_says: str,
) -> None:
    monkeypatch.setattr(cli, "app", _failing(error))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == code
    out = capsys.readouterr().out
    assert says in out
    assert never_says not in out
