"""`voiceagent events` and `voiceagent archive` with bad input: a message and exit 2, no traceback."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaConnectionError
from typer.testing import CliRunner, Result

from infra.eventlog import archive_cli, tail
from infra.eventlog import cli as eventlog_cli
from infra.eventlog.reading import DecodedEvent, EventFilter
from infra.settings import Settings
from schemas.calls import CallEnded
from tests.support.examples import example_record
from voiceagent.cli import app


class Consumer:
    """A consumer of a broker that knows no topic, or that cannot be reached (``refuse``)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.stopped = False

    async def start(self) -> None:
        if self.refuse:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

    async def stop(self) -> None:
        self.stopped = True

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return None


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    # The CLI callback writes these for its own process; setenv first so the undo removes them.
    for name in ("VOICE_KAFKA__BOOTSTRAP", "VOICE_DATABASE__URL"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("VOICE_KAFKA__BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("VOICE_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def _run(cli: CliRunner, *args: str) -> Result:
    result = cli.invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.output
    )
    return result


def _said(result: Result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines


def test_tailing_an_unknown_topic_says_so(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = Consumer()
    monkeypatch.setattr(tail, "make_consumer", lambda kafka, group_id: consumer)
    result = _run(cli, "events", "tail", "-t", "no.such.topic")
    assert result.exit_code == 2
    assert "'no.such.topic' does not exist" in _said(result)
    assert consumer.stopped


async def test_a_consumer_that_cannot_start_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = Consumer(refuse=True)
    monkeypatch.setattr(tail, "make_consumer", lambda kafka, group_id: consumer)
    with pytest.raises(KafkaConnectionError):
        await tail.tail_events(Settings().kafka, "t", EventFilter())
    assert consumer.stopped  # its client closed: no "Unclosed AIOKafkaConsumer" after the message


class Log:
    """The topic ``read_range`` reads: these events, then ``error`` if given."""

    def __init__(self, count: int, error: Exception | None = None) -> None:
        self.events = [
            DecodedEvent(
                topic="voice.calls.events.v1",
                partition=0,
                offset=n,
                timestamp_ms=1_764_072_000_000 + n,
                key=b"call-1",
                headers=(),
                record=example_record(CallEnded, n, call_id="call-1", seq=n + 1),
            )
            for n in range(count)
        ]
        self.error = error
        self.read = False

    async def read_range(self, *args: Any, **kwargs: Any) -> AsyncIterator[DecodedEvent]:
        self.read = True
        for event in self.events:
            yield event
        if self.error is not None:
            raise self.error


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> Log:
    log = Log(2)
    monkeypatch.setattr(eventlog_cli, "read_range", log.read_range)
    return log


def _export(cli: CliRunner, out: Path, *more: str) -> Result:
    return _run(cli, "events", "export", "-t", "voice.calls.events.v1", "--out", str(out), *more)


def test_an_export_replaces_the_file(cli: CliRunner, log: Log, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    out.write_text("an earlier export\n")
    result = _export(cli, out)
    assert result.exit_code == 0, result.output
    assert [line[:1] for line in out.read_text().splitlines()] == ["{", "{"]
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]  # no temporary file left


@pytest.mark.parametrize("error", [None, LookupError("topic 'x' does not exist on the broker")])
def test_an_export_that_writes_nothing_leaves_the_file_as_it_was(
    cli: CliRunner, log: Log, tmp_path: Path, error: Exception | None
) -> None:
    log.events, log.error = log.events[:1] if error else [], error
    out = tmp_path / "events.jsonl"
    out.write_text("an earlier export\n")
    result = _export(cli, out)
    assert result.exit_code == (2 if error else 1)
    assert ("does not exist" if error else "nothing written") in _said(result)
    assert out.read_text() == "an earlier export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]


def test_an_out_in_a_missing_directory_is_refused_before_reading(
    cli: CliRunner, log: Log, tmp_path: Path
) -> None:
    result = _export(cli, tmp_path / "missing" / "events.jsonl")
    assert result.exit_code == 2
    assert f"no directory {tmp_path / 'missing'}" in _said(result)
    assert not log.read


def test_an_avro_out_that_is_a_file_is_refused_before_reading(
    cli: CliRunner, log: Log, tmp_path: Path
) -> None:
    out = tmp_path / "events.jsonl"
    out.write_text("an earlier export\n")
    result = _export(cli, out, "--format", "avro")
    assert result.exit_code == 2
    assert "is a file" in _said(result)
    assert out.read_text() == "an earlier export\n"
    assert not log.read


def test_an_avro_export_creates_its_directory(cli: CliRunner, log: Log, tmp_path: Path) -> None:
    out = tmp_path / "new" / "export"
    result = _export(cli, out, "--format", "avro")
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["voice.calls.v1.CallEnded.avro"]


class Archiver:
    """Stands in for the archiver: records that it was started, and stops at once."""

    started: ClassVar[list[str]] = []

    def __init__(self, kafka: object, archive: object, url: str, **kwargs: Any) -> None:
        self.url = url
        self.records_written = self.files_written = 0

    def stop(self) -> None:
        pass

    async def run(self) -> None:
        Archiver.started.append(self.url)


@pytest.fixture
def archiver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(archive_cli, "Archiver", Archiver)
    monkeypatch.setattr(Archiver, "started", [])
    return Archiver.started


def test_archiving_where_nothing_can_be_written_is_refused_before_it_starts(
    cli: CliRunner, archiver: list[str], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    url = str(tmp_path / "a-file" / "archive")
    result = _run(cli, "archive", "run", "--url", url)
    assert result.exit_code == 2
    assert f"cannot write to the archive {url}" in _said(result)
    assert "archiving to" not in result.output
    assert archiver == []


def test_archiving_to_a_new_directory_starts_and_leaves_no_probe(
    cli: CliRunner, archiver: list[str], tmp_path: Path
) -> None:
    url = str(tmp_path / "archive")
    result = _run(cli, "archive", "run", "--url", url)
    assert result.exit_code == 0, result.output
    assert archiver == [url]
    assert list((tmp_path / "archive").iterdir()) == []


@pytest.mark.parametrize("command", [["archive", "restore"], ["archive", "run", "--url"]])
def test_an_unknown_protocol_is_a_message_naming_the_url(
    cli: CliRunner, archiver: list[str], command: list[str]
) -> None:
    result = _run(cli, *command, "foo://bar")
    assert result.exit_code == 2
    assert "cannot open the archive foo://bar: Protocol not known: foo" in _said(result)
    assert archiver == []


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_a_protocol_whose_package_is_missing_says_what_to_install(cli: CliRunner) -> None:
    result = _run(cli, "archive", "restore", "s3://bucket/x")
    assert result.exit_code == 2
    assert "cannot open the archive s3://bucket/x" in _said(result)
    assert "pip install s3fs" in _said(result)
