"""`voiceagent events` and `voiceagent archive` with bad input: a message and exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError
from typer.testing import CliRunner, Result

from infra.eventlog import tail
from infra.eventlog.reading import EventFilter
from infra.settings import Settings
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


def test_tailing_an_unknown_topic_says_so(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = Consumer()
    monkeypatch.setattr(tail, "make_consumer", lambda kafka, group_id: consumer)
    result = _run(cli, "events", "tail", "-t", "no.such.topic")
    assert result.exit_code == 2
    assert "'no.such.topic' does not exist" in result.output
    assert consumer.stopped


async def test_a_consumer_that_cannot_start_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = Consumer(refuse=True)
    monkeypatch.setattr(tail, "make_consumer", lambda kafka, group_id: consumer)
    with pytest.raises(KafkaConnectionError):
        await tail.tail_events(Settings().kafka, "t", EventFilter())
    assert consumer.stopped  # its client closed: no "Unclosed AIOKafkaConsumer" after the message
