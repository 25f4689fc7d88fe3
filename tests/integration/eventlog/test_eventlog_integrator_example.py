"""The example integrator consumer (aiokafka + avro only) decodes live events from the real broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from infra.kafka import make_producer
from infra.settings import Settings
from schemas.avro_schema import AVSC_DIR
from schemas.catalog import CALL_EVENTS
from tests.integration.eventlog.eventlog_support import CODEC, call_events, produce
from tests.integration.helpers import fresh_topic

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "integrator_consumer.py"


async def test_example_consumer_decodes_live_call_events_and_drops_redeliveries(
    settings: Settings, tmp_path: Path
) -> None:
    call_id = f"call-{uuid.uuid4().hex}"
    events = call_events(call_id, 5)
    await produce(settings.kafka, CALL_EVENTS.name, events)
    await produce(settings.kafka, CALL_EVENTS.name, events[2:3])  # an at-least-once redelivery
    schemas = tmp_path / "avsc"  # only the published files, copied where an integrator keeps them
    for path in AVSC_DIR.rglob("*.avsc"):
        (schemas / path.name).parent.mkdir(parents=True, exist_ok=True)
        (schemas / path.name).write_bytes(path.read_bytes())
    argv = [sys.executable, "-I", str(EXAMPLE), "--bootstrap", settings.kafka.bootstrap or ""]
    argv += ["--schemas", str(schemas), "--topic", CALL_EVENTS.name, "--from-beginning", "--idle-exit", "3"]
    # -I and a foreign cwd keep our sources off sys.path (test_example_consumer_imports_nothing_of_ours
    # checks the imports themselves).
    done = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    mine = [json.loads(line) for line in done.stdout.splitlines() if call_id in line]
    assert [(e["type"], e["event"]["seq"]) for e in mine] == [
        (f"voice.calls.v1.{type(e).__name__}", e.seq) for e in events
    ]
    assert mine[0]["event"]["event_id"] == events[0].event_id


async def test_example_consumer_reports_a_broken_record_and_its_group_skips_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    topic = await fresh_topic(settings.kafka, "example")
    call_id = f"call-{uuid.uuid4().hex}"
    first, second, third = call_events(call_id, 3)
    producer = make_producer(settings.kafka, linger_ms=50)  # one batch: fetched together
    await producer.start()
    try:
        values = (CODEC.encode(first), CODEC.encode(second)[:-3], CODEC.encode(third), None)
        sent = [await producer.send(topic, value, key=call_id.encode()) for value in values]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    argv = [sys.executable, "-I", str(EXAMPLE), "--bootstrap", settings.kafka.bootstrap or ""]
    argv += ["--schemas", str(AVSC_DIR), "--topic", topic, "--from-beginning"]
    argv += ["--group", f"g-{uuid.uuid4().hex[:8]}", "--idle-exit", "3"]
    runs = [
        await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
        )
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    printed = [json.loads(line)["event"]["seq"] for line in runs[0].stdout.splitlines()]
    assert printed == [first.seq, third.seq]  # the broken one reported, the one after it kept
    assert f"{topic}[0]@1: voice.calls.v1." in runs[0].stderr
    assert "does not decode" in runs[0].stderr
    assert "tombstone" in runs[0].stderr  # offset 3: no value
    assert runs[1].stdout == ""  # the group committed what the first run printed, and only that
