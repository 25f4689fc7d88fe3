"""A restore keeps a topic's partition count as archived: it creates a missing topic with exactly
that count and refuses a topic that exists with another; `voiceagent dev` restores before it
creates the catalog's topics, so its own topics never stand in the way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from infra.embedded import start_broker
from infra.eventlog.archive_file import (
    ArchivedRecord,
    archive_fs,
    encode_file,
    file_path,
    layout_bytes,
    layout_path,
    write_durably,
)
from infra.eventlog.restore import PartitionCountError, restore_archive
from infra.kafka import make_consumer
from infra.settings import KafkaSettings, Settings
from schemas.catalog import CATALOG
from tests.integration.eventlog.eventlog_support import read_all
from tests.integration.helpers import create_topic
from tests.support.databases import fresh_database
from voiceagent.dev import prepare_log

pytestmark = pytest.mark.integration

DAY = 1_764_000_000_000
AGENTS = "voice.agents.events.v1"  # three partitions in the catalog


def _archive(root: Path, topic: str, partitions: int) -> None:
    """Six records of ``topic``'s partition 0, archived when it had ``partitions`` partitions."""
    fs, base = archive_fs(str(root))
    write_durably(fs, layout_path(base, topic), layout_bytes(topic, partitions))
    records = [
        ArchivedRecord(
            topic=topic, partition=0, offset=o, timestamp_ms=DAY + o, key=b"agent-%d" % o, value=b"v"
        )
        for o in range(6)
    ]
    write_durably(fs, file_path(base, topic, 0, 0, DAY), encode_file(records))


async def _partitions(kafka: KafkaSettings, topic: str) -> int:
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()


@pytest.fixture
def empty_broker(settings: Settings, tmp_path: Path) -> Iterator[KafkaSettings]:
    broker = start_broker(tmp_path / "broker")
    try:
        yield settings.kafka.model_copy(update={"bootstrap": broker.address, "partitions_override": None})
    finally:
        broker.stop()


async def test_a_topic_with_another_partition_count_than_archived_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    # It was restored into partition 0 of 3, where the producers' partitioner now sends the same
    # keys elsewhere: one key's history and its new records on different partitions.
    topic = f"test.restore-layout.{uuid.uuid4().hex[:8]}"
    _archive(tmp_path / "archive", topic, partitions=1)
    await create_topic(settings.kafka, topic, partitions=3)
    with pytest.raises(
        PartitionCountError, match=f"{topic} has 3 partitions, but the archive's _topic.json says it had 1"
    ):
        await restore_archive(settings.kafka, str(tmp_path / "archive"))
    assert sum(len(rows) for rows in (await read_all(settings.kafka, topic)).values()) == 0


async def test_a_missing_topic_is_created_with_the_archived_count_not_the_catalogs(
    empty_broker: KafkaSettings, tmp_path: Path
) -> None:
    _archive(tmp_path / "archive", AGENTS, partitions=1)
    summary = await restore_archive(empty_broker, str(tmp_path / "archive"))
    assert summary.total == 6
    assert await _partitions(empty_broker, AGENTS) == 1


async def test_dev_restores_before_it_creates_the_catalogs_topics(
    settings: Settings, empty_broker: KafkaSettings, tmp_path: Path
) -> None:
    # The catalog's topics were created first, with the catalog's counts, and the restore then
    # put an archive of one partition into a topic of three.
    _archive(tmp_path / "archive", AGENTS, partitions=1)
    archive = settings.archive.model_copy(update={"url": str(tmp_path / "archive")})
    dev = settings.model_copy(
        update={"kafka": empty_broker, "database": await fresh_database(settings), "archive": archive}
    )
    notes = await asyncio.to_thread(prepare_log, dev, Console(record=True))
    assert any("restored 6 events" in note for note in notes)
    assert await _partitions(empty_broker, AGENTS) == 1
    others = [spec for spec in CATALOG if spec.name != AGENTS]
    assert [await _partitions(empty_broker, spec.name) for spec in others] == [
        spec.partitions for spec in others
    ]
