"""`voiceagent events export|tail` over the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import uuid
from pathlib import Path

import avro.datafile
import avro.io
import pytest
from rich.console import Console
from typer.testing import CliRunner

from infra.eventlog.reading import EventFilter
from infra.eventlog.tail import tail_events
from infra.kafka import make_producer
from infra.settings import Settings
from schemas.avro_schema import full_name
from schemas.calls import CallEnded, CallReceived, TranscriptSegment
from tests.integration.eventlog.eventlog_support import CODEC, call_events, produce
from tests.integration.helpers import fresh_topic
from tests.support.dev_addresses import dev_addresses
from voiceagent.cli import app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exported_topic(settings: Settings) -> tuple[str, list[str]]:
    calls = [f"call-{uuid.uuid4().hex[:8]}" for _ in range(3)]

    async def setup() -> str:
        topic = await fresh_topic(settings.kafka, "eventlog-export", partitions=3)
        for call in calls[:2]:
            await produce(settings.kafka, topic, call_events(call, 4))
        # Many records in one batch: the embedded broker under-reports the end offset then.
        await produce(settings.kafka, topic, call_events(calls[2], 4), batched=True)
        return topic

    return asyncio.run(setup()), calls


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {"VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or ""}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_avro_export_reads_back_with_the_plain_avro_package(
    settings: Settings, exported_topic: tuple[str, list[str]], tmp_path: Path
) -> None:
    topic, calls = exported_topic
    code, output = _cli(
        settings, "events", "export", "--topic", topic, "--format", "avro", "--out", str(tmp_path)
    )
    assert code == 0, output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{full_name(cls)}.avro" for cls in (CallReceived, CallEnded, TranscriptSegment)
    )
    rows = []
    for path in tmp_path.glob("*.avro"):
        with path.open("rb") as fo:
            rows.extend(avro.datafile.DataFileReader(fo, avro.io.DatumReader()))
    assert sorted((r["call_id"], r["seq"]) for r in rows) == sorted(
        (c, s) for c in calls for s in range(1, 5)
    )


def test_jsonl_export_filters_by_call_and_type(
    settings: Settings, exported_topic: tuple[str, list[str]], tmp_path: Path
) -> None:
    topic, calls = exported_topic
    out = tmp_path / "events.jsonl"
    code, output = _cli(
        settings,
        "events",
        "export",
        "--topic",
        topic,
        "--call",
        calls[1],
        "--type",
        "CallEnded",
        "--out",
        str(out),
    )
    assert code == 0, output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["key"], line["type"], line["event"]["seq"]) for line in lines] == [
        (calls[1], full_name(CallEnded), 4)
    ]


def test_a_range_with_no_events_says_so(settings: Settings, exported_topic: tuple[str, list[str]]) -> None:
    topic, _ = exported_topic
    code, output = _cli(settings, "events", "export", "--topic", topic, "--since", "2100-01-01T00:00:00")
    assert code == 1
    assert "no events" in output
    assert "nothing written" in output


@pytest.mark.parametrize("command", ["export", "tail"])
def test_an_unknown_topic_is_refused(settings: Settings, command: str) -> None:
    code, output = _cli(settings, "events", command, "--topic", "no.such.topic.v1")
    assert code == 2
    assert "does not exist" in output


async def test_tail_follows_new_events_of_one_call(settings: Settings) -> None:
    topic = await fresh_topic(settings.kafka, "eventlog-tail", partitions=2)
    mine, other = f"call-{uuid.uuid4().hex[:8]}", f"call-{uuid.uuid4().hex[:8]}"
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, color_system=None)
    tail = asyncio.create_task(
        tail_events(
            settings.kafka, topic, EventFilter(call_id=mine), output="jsonl", limit=3, console=console
        )
    )
    # The tail starts at the end of the topic as it is once the tail is positioned, which the test
    # cannot see: both calls' events go on being produced, one of each at a time, until it has
    # printed three. Whichever it started at, they are the next three of this call, in order.
    producer = make_producer(settings.kafka, linger_ms=1)
    await producer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 20  # a guard only
        for theirs, ours in zip(call_events(other, 500), call_events(mine, 500), strict=True):
            for record in (theirs, ours):
                await (await producer.send(topic, CODEC.encode(record), key=record.call_id.encode()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(tail), 0.1)
            if tail.done() or asyncio.get_running_loop().time() > deadline:
                break
    finally:
        await producer.stop()
    assert await asyncio.wait_for(tail, 5) == 3
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    first = lines[0]["event"]["seq"] if lines else 0
    assert [(line["key"], line["event"]["seq"]) for line in lines] == [(mine, first + n) for n in range(3)]


def test_events_find_a_running_dev_stacks_broker_through_dev_json(
    settings: Settings, exported_topic: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A newcomer runs `voiceagent events ...` beside `voiceagent dev` with nothing set.
    topic, calls = exported_topic
    # The CLI sets the variable for its own process; setenv first, so monkeypatch's undo removes
    # it again and later tests (which start their own embedded broker) do not inherit it.
    for name in ("VOICE_KAFKA__BOOTSTRAP", "VOICE_DATABASE__URL"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    env = {"VOICE_DATA_DIR": str(tmp_path)}
    args = ["events", "export", "--topic", topic, "--call", calls[0], "--format", "jsonl"]
    unset = CliRunner().invoke(app, args, env=env)
    assert unset.exit_code == 2
    assert "start `voiceagent dev`" in unset.output
    (tmp_path / "dev.json").write_text("{not json")  # a damaged file is no traceback
    assert CliRunner().invoke(app, args, env=env).exit_code == 2
    dev_addresses(bootstrap=settings.kafka.bootstrap or "").write(tmp_path)
    found = CliRunner().invoke(app, args, env=env)
    assert found.exit_code == 0, found.output
    assert len([line for line in found.output.splitlines() if line.startswith("{")]) == 4
