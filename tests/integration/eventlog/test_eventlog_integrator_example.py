"""The example integrator consumer (aiokafka + avro only) decodes live events from the real broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from infra.settings import Settings
from schemas.avro_schema import AVSC_DIR
from schemas.catalog import CALL_EVENTS
from tests.integration.eventlog.eventlog_support import call_events, produce

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
