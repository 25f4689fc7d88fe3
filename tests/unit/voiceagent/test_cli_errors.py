"""The voiceagent command: an unreachable broker or database is a message and exit 3; a DB refusal exit 1."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.exc import OperationalError

from infra.embedded import EmbeddedStartError
from infra.eventlog.restore import RestoreError
from infra.eventlog.schema_registry import SchemaRegistryError
from voiceagent import cli
from voiceagent.dev import ServiceStartError
from voiceagent.devlock import DevAlreadyRunningError
from voiceagent.seed import SeedError


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


def test_settings_that_do_not_validate_name_the_variable_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `voiceagent doctor` itself printed a 37-line traceback for the problem it is meant to explain.
    monkeypatch.setenv("VOICE_ARCHIVE__ROLL_SECONDS", "abc")
    monkeypatch.setattr("sys.argv", ["voiceagent", "doctor"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    out = capsys.readouterr().out
    assert "VOICE_ARCHIVE__ROLL_SECONDS" in out
    assert "Traceback" not in out


def test_an_archive_that_cannot_be_restored_is_a_message_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "app", _failing(RestoreError("part-0-00000000000000000000.avro: truncated")))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    out = capsys.readouterr().out
    assert "cannot be restored" in out
    assert "truncated" in out


def test_an_archive_url_that_cannot_be_opened_is_a_restore_error() -> None:
    # `voiceagent dev` printed a ValueError traceback for it at start-up.
    from voiceagent.freshness import _holds_files

    with pytest.raises(RestoreError, match="cannot open the archive URL foo://x"):
        _holds_files("foo://x")


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (
            EmbeddedStartError(
                'postgres exited with 1:\nFATAL:  lock file "postmaster.pid" [already] exists'
            ),
            3,
            'did not start: postgres exited with 1: FATAL: lock file "postmaster.pid" [already] exists',
        ),
        (DevAlreadyRunningError("another `voiceagent dev` (pid 7) is running"), 2, "(pid 7) is running"),
        (  # dev waited 90 s for the API, then printed a SeedError traceback
            SeedError("the API did not answer within 90s (no answer); see /tmp/d/logs/api.log"),
            3,
            "did not start: the API did not answer within 90s (no answer); see /tmp/d/logs/api.log",
        ),
        (
            ServiceStartError("edge exited with 1 while starting; its log: /tmp/d/logs/edge.log"),
            3,
            "did not start: edge exited with 1 while starting; its log: /tmp/d/logs/edge.log",
        ),
        (  # `call timeline` reads the log through the same codec as `events tail`
            SchemaRegistryError("VOICE_KAFKA__WIRE_FORMAT=confluent needs VOICE_KAFKA__SCHEMA_REGISTRY_URL"),
            2,
            "needs VOICE_KAFKA__SCHEMA_REGISTRY_URL",
        ),
    ],
)
def test_a_command_that_cannot_start_says_why_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int,
    says: str,
) -> None:
    monkeypatch.setattr(cli, "app", _failing(error))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == code
    out = " ".join(capsys.readouterr().out.split())  # rich wraps; the log tail's brackets are text
    assert says in out
    assert "Traceback" not in out
