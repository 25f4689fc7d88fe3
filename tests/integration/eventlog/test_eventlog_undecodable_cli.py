"""`events export` says a partial export is partial; `events tail --format jsonl` stays pure JSON."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from infra.eventlog.reading import EventFilter
from infra.eventlog.tail import tail_events
from infra.kafka import make_producer
from infra.settings import Settings
from tests.integration.eventlog.eventlog_support import CODEC, call_events
from tests.integration.helpers import fresh_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


async def _topic_with_a_broken_record(settings: Settings) -> str:
    """A topic holding three call events, the middle one cut short."""
    topic = await fresh_topic(settings.kafka, "undecodable")
    first, second, third = call_events(f"call-{uuid.uuid4().hex}", 3)
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for value in (CODEC.encode(first), CODEC.encode(second)[:-3], CODEC.encode(third)):
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    return topic


def _export(settings: Settings, topic: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or ""}
    argv = [sys.executable, "-m", "voiceagent.cli", "events", "export", "--topic", topic, "--out", str(out)]
    return subprocess.run([*argv, *extra], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


async def test_an_export_that_left_records_out_exits_3_unless_allowed(
    settings: Settings, tmp_path: Path
) -> None:
    topic = await _topic_with_a_broken_record(settings)
    out = tmp_path / "events.jsonl"
    done = await asyncio.to_thread(_export, settings, topic, out)
    assert done.returncode == 3, done.stderr
    assert "1 records left out" in done.stderr
    assert len(out.read_text().splitlines()) == 2  # what did decode is still written
    allowed = await asyncio.to_thread(
        _export, settings, topic, tmp_path / "again.jsonl", "--allow-undecodable"
    )
    assert allowed.returncode == 0, allowed.stderr


async def test_tail_jsonl_reports_undecodable_records_apart_from_the_events(settings: Settings) -> None:
    topic = await _topic_with_a_broken_record(settings)
    events, notices = io.StringIO(), io.StringIO()
    await tail_events(
        settings.kafka,
        topic,
        EventFilter(since=datetime(2000, 1, 1, tzinfo=UTC)),
        output="jsonl",
        limit=2,
        console=Console(file=events, highlight=False, soft_wrap=True),
        notices=Console(file=notices, highlight=False, soft_wrap=True),
    )
    lines = events.getvalue().splitlines()
    assert len(lines) == 2
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert "not decodable" in notices.getvalue()
