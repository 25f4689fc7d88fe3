"""The voiceagent command turns an unreachable broker or database into a message and exit code 3."""

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
