"""Restoring an archive with a file missing: refused with the reason, or restored on request with
the shift said out loud; `voiceagent dev`'s own restore refuses it before the archiver meets it.
And the archiver compares every file it writes with the archive's files it may overlap."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from infra.embedded import start_broker
from infra.eventlog.archive import Archiver, WrittenFile, list_files
from infra.eventlog.archive_file import (
    ArchiveConflictError,
    ArchivedRecord,
    archive_fs,
    encode_file,
    file_path,
    layout_bytes,
    layout_path,
    write_durably,
)
from infra.eventlog.restore import ArchiveGapError
from infra.kafka import make_admin, make_producer
from infra.settings import ArchiveSettings, KafkaSettings, Settings
from tests.integration.eventlog.eventlog_support import read_all
from tests.integration.helpers import fresh_topic
from tests.support.databases import fresh_database
from voiceagent.cli import app
from voiceagent.freshness import reconcile_fresh_broker

pytestmark = pytest.mark.integration

DAY = 1_764_000_000_000


def _gapped_archive(root: Path, topic: str) -> list[str]:
    """Files of offsets 0..9 and 20..29 of ``topic``'s one partition: 10..19 are missing."""
    fs, base = archive_fs(str(root))
    write_durably(fs, layout_path(base, topic), layout_bytes(topic, 1))
    paths = []
    for first in (0, 20):
        records = [
            ArchivedRecord(
                topic=topic, partition=0, offset=o, timestamp_ms=DAY + o, key=b"k", value=b"v%d" % o
            )
            for o in range(first, first + 10)
        ]
        paths.append(file_path(base, topic, 0, first, DAY + first))
        write_durably(fs, paths[-1], encode_file(records))
    return paths


async def _topics(kafka: KafkaSettings) -> set[str]:
    admin = make_admin(kafka)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _cli(kafka: KafkaSettings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"VOICE_KAFKA__BOOTSTRAP": kafka.bootstrap or ""})
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def empty_broker(settings: Settings, tmp_path: Path) -> Iterator[KafkaSettings]:
    broker = start_broker(tmp_path / "broker")
    try:
        yield settings.kafka.model_copy(update={"bootstrap": broker.address, "partitions_override": None})
    finally:
        broker.stop()


def test_archive_restore_refuses_a_gap_and_restores_it_only_when_told(
    settings: Settings, tmp_path: Path
) -> None:
    topic = f"test.archive-gap.{uuid.uuid4().hex[:8]}"
    before, after = _gapped_archive(tmp_path / "archive", topic)
    code, output = _cli(settings.kafka, "archive", "restore", str(tmp_path / "archive"))
    assert code == 1
    assert f"{topic}[0]: offsets 10..19 are in no file" in output
    assert Path(before).name in output
    assert Path(after).name in output
    assert "--allow-gaps" in output
    assert topic not in asyncio.run(_topics(settings.kafka))  # nothing published, not even a topic

    code, output = _cli(settings.kafka, "archive", "restore", str(tmp_path / "archive"), "--allow-gaps")
    assert code == 0
    assert "restored 20 records" in output
    assert "from offset 20 on are now 10 lower" in output
    restored = asyncio.run(read_all(settings.kafka, topic))
    assert [row[2] for row in restored[0]] == [b"v%d" % o for o in (*range(10), *range(20, 30))]


async def test_dev_refuses_to_restore_a_gapped_archive_and_says_why(
    settings: Settings, empty_broker: KafkaSettings, tmp_path: Path
) -> None:
    # It restored 20 records numbered 0..19 and committed the archiver at 20: the next new
    # record went to offset 20, where the archive's own file holds another, and the archiver
    # stopped with ArchiveConflictError ("not the log the archive was taken from") at every start.
    topic = f"test.dev-gap.{uuid.uuid4().hex[:8]}"
    _gapped_archive(tmp_path / "archive", topic)
    archive = settings.archive.model_copy(update={"url": str(tmp_path / "archive")})
    dev = settings.model_copy(
        update={"kafka": empty_broker, "database": await fresh_database(settings), "archive": archive}
    )
    with pytest.raises(ArchiveGapError, match=r"offsets 10\.\.19 are in no file"):
        await asyncio.to_thread(reconcile_fresh_broker, dev, Console(record=True))
    assert topic not in await _topics(empty_broker)


async def test_the_archiver_compares_every_file_with_the_archive_not_only_the_first_of_a_run(
    settings: Settings, tmp_path: Path
) -> None:
    # Only a partition's first file of a run was compared with the archive's other files; later
    # ones only with a file of the same name. So a file of 20..29 went beside another log's file
    # of 25..34, and the archive held two records at each of 25..29.
    topic = await fresh_topic(settings.kafka, "archive-every-file")
    group = f"voice-archiver-test-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "archive"
    roll = ArchiveSettings(roll_records=10, roll_seconds=60)
    await _send(settings.kafka, topic, range(10))
    written = asyncio.Event()
    first_run = Archiver(
        settings.kafka, roll, str(root), topics=[topic], group_id=group, on_file=lambda f: written.set()
    )
    first_run_done = asyncio.create_task(first_run.run())
    await asyncio.wait_for(written.wait(), 60)
    first_run.stop()
    await first_run_done

    fs, base = archive_fs(str(root))
    other_log = [
        ArchivedRecord(topic=topic, partition=0, offset=o, timestamp_ms=DAY + o, key=b"k", value=b"other")
        for o in range(25, 35)
    ]
    foreign = file_path(base, topic, 0, 25, DAY)
    write_durably(fs, foreign, encode_file(other_log))
    await _send(settings.kafka, topic, range(10, 30))

    def stop_after_20(f: WrittenFile) -> None:  # it wrote 20..29 without a word: stop there, not at 60 s
        if f.first_offset == 20:
            archiver.stop()

    archiver = Archiver(
        settings.kafka, roll, str(root), topics=[topic], group_id=group, on_file=stop_after_20
    )
    with pytest.raises(ArchiveConflictError) as caught:
        await asyncio.wait_for(archiver.run(), 60)
    assert (caught.value.path, caught.value.offset) == (foreign, 25)
    assert archiver.files_written == 1  # 10..19, which meets no other file
    assert not [p for p in list_files(fs, base) if p.endswith(f"part-0-{20:020d}.avro")]


async def _send(kafka: KafkaSettings, topic: str, values: range) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, b"%d" % value, key=b"k", partition=0)
    finally:
        await producer.stop()
