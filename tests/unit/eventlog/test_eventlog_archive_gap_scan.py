"""The restore's scan refuses a partition whose files leave offsets out or disagree where they overlap."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from infra.eventlog.archive_cli import gap_shifts
from infra.eventlog.archive_file import ArchivedRecord, archive_fs, encode_file, file_path, write_durably
from infra.eventlog.restore import (
    ArchiveGapError,
    ArchiveInvalidError,
    Gap,
    find_gaps,
    scan_archive,
)
from infra.eventlog.restore import (
    _records as partition_records,
)

TOPIC = "voice.calls.events.v1"
DAY = 1_764_072_000_000  # 2025-11-25T12:00:00Z
TP = TopicPartition(TOPIC, 0)


def _records(first: int, count: int, *, day: int = DAY, value: bytes = b"v") -> list[ArchivedRecord]:
    return [
        ArchivedRecord(
            topic=TOPIC, partition=0, offset=o, timestamp_ms=day + o, key=b"call-1", value=value + b"%d" % o
        )
        for o in range(first, first + count)
    ]


def _write(root: Path, records: list[ArchivedRecord]) -> str:
    fs, base = archive_fs(str(root))
    path = file_path(base, TOPIC, 0, records[0].offset, records[0].timestamp_ms)
    write_durably(fs, path, encode_file(records))
    return path


def test_a_file_missing_between_two_is_refused_with_the_partition_files_and_offsets(tmp_path: Path) -> None:
    # Restore republished 0..9 then 20..29, which the broker numbered 0..19, without a word.
    first, _, last = (_write(tmp_path, _records(start, 10)) for start in (0, 10, 20))
    Path(_).unlink()
    with pytest.raises(ArchiveGapError) as caught:
        scan_archive(str(tmp_path))
    message = str(caught.value)
    assert f"{TOPIC}[0]: offsets 10..19 are in no file" in message
    assert first in message
    assert last in message
    assert "--allow-gaps" in message
    assert caught.value.gaps == [Gap(TP, 10, 19, first, last)]


def test_a_missing_first_file_is_a_gap_too(tmp_path: Path) -> None:
    # A pruned oldest date= directory: every record would come back 10 lower.
    later = _write(tmp_path, _records(10, 10))
    with pytest.raises(ArchiveGapError, match=r"offsets 0\.\.9 are in no file \(before "):
        scan_archive(str(tmp_path))
    assert scan_archive(str(tmp_path), allow_gaps=True).gaps == [Gap(TP, 0, 9, None, later)]


def test_allow_gaps_restores_what_is_there_and_says_how_far_offsets_move(tmp_path: Path) -> None:
    for start in (0, 20, 35):
        _write(tmp_path, _records(start, 10))
    plan = scan_archive(str(tmp_path), allow_gaps=True)
    assert plan.total == 30
    assert [(g.first, g.last) for g in plan.gaps] == [(10, 19), (30, 34)]
    fs, _ = archive_fs(str(tmp_path))
    offsets = [r.offset for r in partition_records(fs, plan.files[TP], TP)]
    assert offsets == [*range(10), *range(20, 30), *range(35, 45)]
    lines = gap_shifts(plan.gaps)
    assert "from offset 20 on are now 10 lower" in lines[0]
    assert "from offset 35 on are now 15 lower" in lines[1]


def test_overlapping_files_with_other_records_are_refused(tmp_path: Path) -> None:
    # A broker that started again at 0 on a later day archived beside the old files; restore
    # kept the first file's records at 0..9 and dropped the other log's without a word.
    first = _write(tmp_path, _records(0, 10))
    other = _write(tmp_path, _records(0, 15, day=DAY + 86_400_000, value=b"other"))
    with pytest.raises(ArchiveInvalidError) as caught:
        scan_archive(str(tmp_path))
    message = str(caught.value)
    assert f"{other}: offset 0 holds another record than {first} has there" in message


def test_overlapping_files_that_agree_are_read_once(tmp_path: Path) -> None:
    # An archiver crash before its commit rewrites the same records, rolled elsewhere.
    held = _records(0, 30)
    for part in (held[:12], held[10:20], held[5:30]):
        _write(tmp_path, part)
    plan = scan_archive(str(tmp_path))
    fs, _ = archive_fs(str(tmp_path))
    assert [r.offset for r in partition_records(fs, plan.files[TP], TP)] == list(range(30))
    assert plan.gaps == []


def test_an_overlap_differing_in_a_later_record_only_is_refused(tmp_path: Path) -> None:
    held = _records(0, 20)
    _write(tmp_path, held[:15])
    changed = [*held[10:13], dataclasses.replace(held[13], value=b"changed"), *held[14:]]
    path = _write(tmp_path, changed)
    with pytest.raises(ArchiveInvalidError, match=f"{path}: offset 13 holds another record"):
        scan_archive(str(tmp_path))


def test_find_gaps_follows_the_furthest_offset_read() -> None:
    spans = [("a", 0, 20), ("b", 5, 9), ("c", 21, 30), ("d", 40, 41)]
    assert find_gaps(TP, spans) == [Gap(TP, 31, 39, "c", "d")]
    assert find_gaps(TP, [("a", 3, 5)]) == [Gap(TP, 0, 2, None, "a")]
    assert find_gaps(TP, []) == []
