"""How many partitions a restore wants of a target topic: the archive's _topic.json decides."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.eventlog.archive_file import (
    ArchivedRecord,
    archive_fs,
    encode_file,
    file_path,
    layout_bytes,
    layout_path,
    write_durably,
)
from infra.eventlog.restore import (
    ArchiveInvalidError,
    new_topic_partitions,
    partition_count_problem,
    scan_archive,
)

TOPIC = "voice.agents.events.v1"


def test_a_topic_is_created_with_the_archived_count_even_below_the_catalogs() -> None:
    assert new_topic_partitions(1, [0], catalog=3) == 1
    assert new_topic_partitions(6, [0, 2], catalog=3) == 6
    assert new_topic_partitions(None, [0, 4], catalog=3) == 5  # an archive from before _topic.json
    assert new_topic_partitions(None, [0], catalog=3) == 3


def test_an_existing_topic_must_have_the_archived_count() -> None:
    assert partition_count_problem(TOPIC, 1, 1, [0]) is None
    more = partition_count_problem(TOPIC, 3, 1, [0])
    assert more is not None
    assert "has 3 partitions, but the archive's _topic.json says it had 1" in more
    assert "recreate it with 1 partitions" in more
    assert partition_count_problem(TOPIC, 2, 3, [0]) is not None
    assert partition_count_problem(TOPIC, 6, None, [0, 4]) is None  # no layout: at least enough
    assert (
        partition_count_problem(TOPIC, 3, None, [0, 4])
        == f"target topic {TOPIC} lacks partitions [4] that the archive has"
    )


def test_files_of_a_partition_the_layout_does_not_have_are_reported(tmp_path: Path) -> None:
    fs, root = archive_fs(str(tmp_path))
    write_durably(fs, layout_path(root, TOPIC), layout_bytes(TOPIC, 2))
    record = ArchivedRecord(
        topic=TOPIC, partition=2, offset=0, timestamp_ms=1_764_000_000_000, key=b"k", value=b"v"
    )
    write_durably(fs, file_path(root, TOPIC, 2, 0, record.timestamp_ms), encode_file([record]))
    with pytest.raises(
        ArchiveInvalidError,
        match=r"_topic.json: says 2 partitions, but the archive has files of partitions \[2\]",
    ):
        scan_archive(str(tmp_path))
