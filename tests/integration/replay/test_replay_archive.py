"""Archive → an empty broker → replay: the rebuilt read models equal the live ones."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from infra.embedded import start_broker
from infra.eventlog.archive import Archiver, WrittenFile
from infra.eventlog.restore import restore_archive
from infra.settings import ArchiveSettings, Settings
from schemas.codec import Codec
from tests.integration.readside.call_stream import unique
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.replay.replay_support import Log, build_live, dump, fresh_topics, produce_log
from voiceagent.cli import app
from voiceagent.replay import replay

pytestmark = pytest.mark.integration


async def _archive(settings: Settings, topics: list[str], records: int, root: Path) -> None:
    done, written = asyncio.Event(), []

    def on_file(f: WrittenFile) -> None:
        written.append(f.records)
        if sum(written) >= records:
            done.set()

    archiver = Archiver(
        settings.kafka,
        ArchiveSettings(roll_records=200, roll_seconds=0.5),
        str(root),
        topics=topics,
        group_id=f"replay-archiver-{uuid.uuid4().hex[:8]}",
        on_file=on_file,
    )
    run = asyncio.create_task(archiver.run())
    await asyncio.wait_for(done.wait(), 60)
    archiver.stop()
    await run


async def test_replay_from_an_archive_into_an_empty_broker_rebuilds_identical_read_models(
    settings: Settings, producer: AIOKafkaProducer, codec: Codec, tmp_path: Path
) -> None:
    topics = await fresh_topics(settings.kafka)
    log = Log(topics, await produce_log(producer, codec, topics, calls=30))
    root = tmp_path / "archive"
    await _archive(settings, list(topics.values()), log.records, root)
    live_schema = await migrated_schema(settings)
    async with schema_sessions(settings, live_schema) as live:
        await build_live(settings, live, producer, codec, topics, log.records)
        expected = await dump(live)

    broker = start_broker(tmp_path / "broker")
    try:
        empty = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={"bootstrap": broker.address, "partitions_override": None}
                )
            }
        )
        restored = await restore_archive(empty.kafka, str(root))
        assert restored.total == log.records
        rebuild = unique("rebuild").replace("-", "_")
        outcome = await replay(empty, log.request(rebuild))
    finally:
        broker.stop()

    assert outcome.verdict is not None
    assert outcome.verdict.problems == []
    async with schema_sessions(settings, rebuild) as rebuilt:
        assert await dump(rebuilt) == expected


async def test_replay_from_archive_refuses_a_broker_that_holds_the_archived_topics(
    settings: Settings, producer: AIOKafkaProducer, codec: Codec, tmp_path: Path
) -> None:
    topics = await fresh_topics(settings.kafka)
    records = await produce_log(producer, codec, topics, calls=2)
    await _archive(settings, list(topics.values()), records, tmp_path / "archive")
    env = {
        "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
        "VOICE_DATABASE__URL": settings.database.url or "",
    }
    args = ["replay", "all", "--from-archive", str(tmp_path / "archive"), "--into-schema", "rebuild_never"]
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    output = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "archive not restored, nothing replayed: target topics are not empty" in output
    assert "--force" in output
