"""Archive → an empty second broker → the same records, byte for byte; refusals and damage reported."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from rich.console import Console
from typer.testing import CliRunner

from infra.embedded import start_broker
from infra.eventlog.archive import Archiver, WrittenFile, list_files
from infra.eventlog.archive_file import ArchiveConflictError, archive_fs, parse_name, read_file
from infra.eventlog.restore import TargetNotEmptyError, restore_archive
from infra.kafka import make_consumer
from infra.settings import ArchiveSettings, KafkaSettings, Settings
from tests.integration.eventlog.eventlog_support import call_events, produce, read_all
from tests.integration.helpers import create_topic, fresh_topic
from tests.support.databases import fresh_database
from voiceagent.cli import app
from voiceagent.freshness import reconcile_fresh_broker

pytestmark = pytest.mark.integration

CALLS_PER_TOPIC = 12
EVENTS_PER_CALL = 9
_PARTITIONER = DefaultPartitioner()


def _call_ids(count: int, partitions: list[int]) -> list[str]:
    """Call ids whose keys the producer's default partitioner sends to ``partitions``, in turn."""
    ids: list[str] = []
    while len(ids) < count:
        call_id = f"call-{uuid.uuid4().hex}"
        if _PARTITIONER(call_id.encode(), [0, 1, 2], [0, 1, 2]) == partitions[len(ids) % len(partitions)]:
            ids.append(call_id)
    return ids


@pytest.fixture(scope="module")
def archived(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], str]:
    """Two fresh topics with records (with headers), archived into small files by a real Archiver."""
    root = tmp_path_factory.mktemp("archive")
    group = f"voice-archiver-test-{uuid.uuid4().hex[:8]}"

    async def setup() -> list[str]:
        topics = [await fresh_topic(settings.kafka, f"eventlog-archive{i}", partitions=3) for i in range(2)]
        # The first topic has calls on every partition; the second none on partition 2, which the
        # restore must recreate all the same (keys must keep hashing to the same partitions).
        for topic, partitions in zip(topics, ([0, 1, 2], [0, 1]), strict=True):
            ids = _call_ids(CALLS_PER_TOPIC, partitions)
            records = [e for call_id in ids for e in call_events(call_id, EVENTS_PER_CALL)]
            await produce(settings.kafka, topic, records, headers=True)
        expected = 2 * CALLS_PER_TOPIC * EVENTS_PER_CALL
        done = asyncio.Event()
        written: list[int] = []

        def on_file(f: WrittenFile) -> None:
            written.append(f.records)
            if sum(written) >= expected:
                done.set()

        archiver = Archiver(
            settings.kafka,
            ArchiveSettings(roll_records=20, roll_seconds=0.5),
            str(root),
            topics=topics,
            group_id=group,
            on_file=on_file,
        )
        run = asyncio.create_task(archiver.run())
        await asyncio.wait_for(done.wait(), 60)
        archiver.stop()
        await run
        return topics

    return root, asyncio.run(setup()), group


@pytest.fixture
def empty_broker(settings: Settings, tmp_path: Path) -> Iterator[KafkaSettings]:
    broker = start_broker(tmp_path)
    try:
        yield settings.kafka.model_copy(update={"bootstrap": broker.address, "partitions_override": None})
    finally:
        broker.stop()


def test_archive_files_are_partitioned_by_topic_date_and_partition(
    archived: tuple[Path, list[str], str],
) -> None:
    root, topics, _ = archived
    fs, base = archive_fs(str(root))
    files = list_files(fs, base)
    assert {Path(f).relative_to(root).parts[0] for f in files} == set(topics)
    for path in files:
        partition, first = parse_name(path) or (-1, -1)
        records = list(read_file(fs, path))
        assert Path(path).parent.name.startswith("date=")
        assert {r.partition for r in records} == {partition}
        assert records[0].offset == first
        assert all(r.record_type and r.record_type.startswith("voice.calls.v1.") for r in records)


async def test_offsets_are_committed_for_everything_archived(
    settings: Settings, archived: tuple[Path, list[str], str]
) -> None:
    _, topics, group = archived
    consumer = make_consumer(settings.kafka, group_id=group)
    await consumer.start()
    try:
        for topic in topics:
            parts = [TopicPartition(topic, p) for p in range(3)]
            ends = await consumer.end_offsets(parts)
            assert {tp: await consumer.committed(tp) or 0 for tp in parts} == ends  # None: never had records
    finally:
        await consumer.stop()


async def test_restore_into_an_empty_broker_is_byte_identical_and_idempotent(
    settings: Settings, archived: tuple[Path, list[str], str], empty_broker: KafkaSettings
) -> None:
    root, topics, _ = archived
    summary = await restore_archive(empty_broker, str(root))
    assert summary.total == 2 * CALLS_PER_TOPIC * EVENTS_PER_CALL
    assert sorted(summary.created_topics) == sorted(topics)
    for topic in topics:
        source, restored = await read_all(settings.kafka, topic), await read_all(empty_broker, topic)
        # Same partition, same order, same key, value bytes, headers and timestamp (offsets are new).
        assert {p: [r[1:] for r in rows] for p, rows in restored.items()} == {
            p: [r[1:] for r in rows] for p, rows in source.items()
        }
        assert all(h for rows in restored.values() for r in rows for h in r[3])
        assert sorted(restored) == [0, 1, 2]

    with pytest.raises(TargetNotEmptyError, match="--force"):
        await restore_archive(empty_broker, str(root))
    before = {topic: await read_all(empty_broker, topic) for topic in topics}
    again = await restore_archive(empty_broker, str(root), force=True)
    assert again.total == 0
    assert sum(again.skipped_present.values()) == summary.total
    assert {topic: await read_all(empty_broker, topic) for topic in topics} == before  # nothing added
    counts = {p: len(rows) for p, rows in before[topics[0]].items()}
    assert sum(counts.values()) == CALLS_PER_TOPIC * EVENTS_PER_CALL


def _cli(kafka: KafkaSettings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"VOICE_KAFKA__BOOTSTRAP": kafka.bootstrap or ""})
    return result.exit_code, result.output


def test_restore_refuses_a_non_empty_target_and_says_why(
    settings: Settings, archived: tuple[Path, list[str], str]
) -> None:
    root, topics, _ = archived
    code, output = _cli(settings.kafka, "archive", "restore", str(root))
    assert code == 1
    assert "not empty" in output
    assert topics[0] in output
    assert "--force" in output


def test_a_damaged_archive_is_reported_with_file_and_offset_and_nothing_published(
    settings: Settings, archived: tuple[Path, list[str], str], tmp_path: Path
) -> None:
    root, topics, _ = archived
    damaged = tmp_path / "damaged"
    shutil.copytree(root, damaged)
    victim = sorted(damaged.rglob("*.avro"))[3]
    victim.write_bytes(victim.read_bytes()[:-40])
    before = asyncio.run(read_all(settings.kafka, topics[0]))
    code, output = _cli(settings.kafka, "archive", "restore", str(damaged), "--force")
    flat = " ".join(output.split())
    assert code == 1
    assert victim.name in flat
    assert "at byte" in flat
    assert "nothing was published" in flat
    assert asyncio.run(read_all(settings.kafka, topics[0])) == before


@pytest.mark.parametrize("earlier_day", [False, True], ids=["same day", "an earlier day"])
async def test_an_archiver_on_a_fresh_broker_refuses_to_replace_the_archives_files(
    archived: tuple[Path, list[str], str], empty_broker: KafkaSettings, tmp_path: Path, earlier_day: bool
) -> None:
    # Its offsets start at 0 again: the same file names, other records. They replaced the
    # archive's files without a word, and the archived events were gone. Archived on a later
    # day, they went beside the old files, and restore kept one record per offset.
    root, topics, _ = archived
    copy = tmp_path / "archive"
    shutil.copytree(root, copy)
    if earlier_day:
        for day in list((copy / topics[0]).glob("date=*")):
            day.rename(day.with_name("date=2000-01-01"))
    fs, base = archive_fs(str(copy))
    before = {path: fs.cat(path) for path in list_files(fs, base)}
    await create_topic(empty_broker, topics[0], partitions=3)
    await produce(empty_broker, topics[0], call_events(f"call-{uuid.uuid4().hex}", 3))
    archiver = Archiver(
        empty_broker, ArchiveSettings(roll_records=1, roll_seconds=0.2), str(copy), topics=[topics[0]]
    )
    with pytest.raises(ArchiveConflictError, match="voiceagent archive restore"):
        await asyncio.wait_for(archiver.run(), 60)
    assert {path: fs.cat(path) for path in list_files(fs, base)} == before


async def test_dev_restores_the_archive_into_an_empty_broker_even_with_no_read_models(
    settings: Settings, archived: tuple[Path, list[str], str], empty_broker: KafkaSettings
) -> None:
    # A new database (no checkpoints) skipped the restore, and the archiver then met the archive.
    root, topics, _ = archived
    archive = settings.archive.model_copy(update={"url": str(root)})
    dev = settings.model_copy(
        update={"kafka": empty_broker, "database": await fresh_database(settings), "archive": archive}
    )
    notes = await asyncio.to_thread(reconcile_fresh_broker, dev, Console(record=True))
    assert any("restored" in note for note in notes)
    restored = await read_all(empty_broker, topics[0])
    assert sum(len(rows) for rows in restored.values()) == CALLS_PER_TOPIC * EVENTS_PER_CALL
