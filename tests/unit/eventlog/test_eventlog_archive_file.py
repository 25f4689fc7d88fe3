"""Archive files: byte-exact round trip, layout, and damaged files reported with file and position."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from infra.eventlog.archive import list_files
from infra.eventlog.archive_file import (
    ArchiveCorruptError,
    ArchivedRecord,
    archive_fs,
    conflicting_offset,
    encode_file,
    file_path,
    files_meeting,
    parse_name,
    read_file,
    write_durably,
)
from infra.eventlog.restore import ArchiveInvalidError, scan_archive

DAY = 1_764_072_000_000  # 2025-11-25T12:00:00Z


def _records(
    n: int, *, first: int = 0, partition: int = 2, topic: str = "voice.calls.events.v1"
) -> list[ArchivedRecord]:
    return [
        ArchivedRecord(
            topic=topic,
            partition=partition,
            offset=first + i,
            timestamp_ms=DAY + i,
            key=f"call-{i % 3}".encode(),
            value=b"\xc3\x01" + bytes(range(8)) + i.to_bytes(4, "big") * 50,
            headers=(("traceparent", f"00-{i:032x}-01".encode()), ("empty", None)),
            record_type="voice.calls.v1.CallEnded",
        )
        for i in range(n)
    ]


def _write(root: Path, records: list[ArchivedRecord]) -> str:
    fs, base = archive_fs(str(root))
    first = records[0]
    path = file_path(base, first.topic, first.partition, first.offset, first.timestamp_ms)
    write_durably(fs, path, encode_file(records))
    return path


def test_a_file_reads_back_byte_exact_with_keys_headers_and_offsets(tmp_path: Path) -> None:
    records = _records(500, first=40)
    path = _write(tmp_path, records)
    fs, _ = archive_fs(str(tmp_path))
    assert list(read_file(fs, path)) == records
    assert path.endswith("voice.calls.events.v1/date=2025-11-25/part-2-00000000000000000040.avro")
    assert parse_name(path) == (2, 40)
    assert not list(tmp_path.rglob("*.tmp"))


def test_archive_files_are_listed_by_topic_and_date(tmp_path: Path) -> None:
    a = _write(tmp_path, _records(3, first=0))
    b = _write(tmp_path, _records(3, first=3, topic="voice.agents.events.v1", partition=0))
    fs, root = archive_fs(str(tmp_path))
    assert list_files(fs, root) == sorted([a, b])


def test_a_truncated_file_is_reported_with_its_path_and_position(tmp_path: Path) -> None:
    path = Path(_write(tmp_path, _records(2000)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    fs, _ = archive_fs(str(tmp_path))
    with pytest.raises(ArchiveCorruptError) as caught:
        list(read_file(fs, str(path)))
    assert str(path) in str(caught.value)
    assert caught.value.byte_offset is not None


def test_a_flipped_byte_is_reported_not_skipped(tmp_path: Path) -> None:
    path = Path(_write(tmp_path, _records(2000)))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveInvalidError) as caught:
        scan_archive(str(tmp_path))
    assert [p.path for p in caught.value.problems] == [str(path)]
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_avro_is_reported(tmp_path: Path) -> None:
    path = Path(_write(tmp_path, _records(3)))
    path.write_bytes(b"not avro at all")
    with pytest.raises(ArchiveInvalidError, match="not an archive file"):
        scan_archive(str(tmp_path))


def test_a_file_whose_name_disagrees_with_its_records_is_reported(tmp_path: Path) -> None:
    path = Path(_write(tmp_path, _records(3, first=10)))
    path.rename(path.with_name("part-2-00000000000000000011.avro"))
    with pytest.raises(ArchiveInvalidError, match="file name says 11"):
        scan_archive(str(tmp_path))


def test_overlapping_files_after_an_archiver_crash_count_each_offset_once(tmp_path: Path) -> None:
    records = _records(10)
    _write(tmp_path, records[:6])
    _write(tmp_path, records[4:])  # a rewrite starting inside the first file's range
    plan = scan_archive(str(tmp_path))
    assert plan.total == 10


def test_the_same_offsets_written_again_do_not_conflict_other_records_do(tmp_path: Path) -> None:
    # A fresh broker starts its offsets at 0 again: its records would replace the archive's
    # files of the same names, and the archived events were lost without a word.
    fs, root = archive_fs(str(tmp_path))
    held = _records(10)
    path = file_path(root, held[0].topic, 2, 0, held[0].timestamp_ms)
    write_durably(fs, path, encode_file(held))
    assert conflicting_offset(fs, path, held) is None
    assert conflicting_offset(fs, path, held[:4]) is None  # re-archived after a crash, rolled sooner
    assert conflicting_offset(fs, path, _records(14)) is None  # or later
    other_log = [dataclasses.replace(r, value=b"another log's " + r.value) for r in _records(3)]  # type: ignore[operator]
    assert conflicting_offset(fs, path, other_log) == 0
    assert (
        conflicting_offset(fs, file_path(root, held[0].topic, 2, 50, held[0].timestamp_ms), other_log) is None
    )


def test_a_damaged_leftover_is_no_conflict(tmp_path: Path) -> None:
    fs, root = archive_fs(str(tmp_path))
    held = _records(5)
    path = file_path(root, held[0].topic, 2, 0, held[0].timestamp_ms)
    write_durably(fs, path, encode_file(held)[:40])  # a crash mid-write, before the rename existed
    assert conflicting_offset(fs, path, held) is None


def test_a_record_type_a_newer_version_knows_is_no_conflict(tmp_path: Path) -> None:
    fs, root = archive_fs(str(tmp_path))
    held = [dataclasses.replace(r, record_type=None) for r in _records(3)]
    path = file_path(root, held[0].topic, 2, 0, held[0].timestamp_ms)
    write_durably(fs, path, encode_file(held))
    assert conflicting_offset(fs, path, _records(3)) is None  # same records, their type now named


def test_the_files_that_may_hold_a_range_are_the_one_before_it_and_those_inside() -> None:
    unread: dict[str, tuple[int, int | None]] = {"a": (0, None), "b": (100, None), "c": (200, None)}
    assert files_meeting(unread, 150, 160) == ["b"]
    assert files_meeting(unread, 0, 120) == ["a", "b"]
    assert files_meeting(unread, 300, 310) == ["c"]
    assert files_meeting({}, 0, 5) == []
    assert files_meeting({"a": (0, None), "a2": (0, None)}, 3, 5) == ["a", "a2"]  # another day's, same start


def test_a_file_whose_end_is_known_is_picked_only_when_its_range_meets() -> None:
    # Read or written once, a file is not read again for records past its end (the steady state).
    known: dict[str, tuple[int, int | None]] = {"a": (0, 99), "b": (100, 199), "old": (150, None)}
    assert files_meeting(known, 200, 209) == ["old"]  # last to start before: it may run on
    assert files_meeting({**known, "old": (150, 180)}, 200, 209) == []
    assert files_meeting(known, 50, 120) == ["a", "b"]
    assert files_meeting({"a": (0, 500), "b": (100, 199)}, 300, 310) == ["a"]  # ran past b's start
