"""The archive's file format and layout: Avro object container files of raw Kafka records.

Each file holds consecutive records of one topic partition, written as
``{root}/{topic}/date=YYYY-MM-DD/part-{partition}-{first_offset:020d}.avro`` (the date of the
first record's timestamp, UTC). A record keeps everything restore needs to be byte-exact: the
key, the value bytes as they were on the wire, the headers, partition, offset and timestamp,
plus the record type's full name (read from the value's header) for people and tools.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import fsspec
from fastavro import parse_schema, reader, writer
from fastavro.schema import to_parsing_canonical_form
from fsspec.implementations.local import LocalFileSystem

ARCHIVE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "ArchivedRecord",
    "namespace": "voice.archive.v1",
    "doc": "One Kafka record exactly as it was on the broker.",
    "fields": [
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "timestamp_ms", "type": "long", "doc": "Kafka record timestamp, ms since the epoch."},
        {"name": "timestamp_type", "type": "int", "doc": "0 create time, 1 log-append time."},
        {"name": "key", "type": ["null", "bytes"], "default": None},
        {"name": "value", "type": ["null", "bytes"], "default": None},
        {
            "name": "headers",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Header",
                    "fields": [
                        {"name": "key", "type": "string"},
                        {"name": "value", "type": ["null", "bytes"]},
                    ],
                },
            },
            "default": [],
        },
        {"name": "record_type", "type": ["null", "string"], "default": None, "doc": "Avro full name."},
    ],
}
_PARSED = parse_schema(ARCHIVE_SCHEMA)
_CANONICAL = to_parsing_canonical_form(ARCHIVE_SCHEMA)
_PART = re.compile(r"^part-(\d+)-(\d+)\.avro$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchivedRecord:
    """One archived Kafka record."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    timestamp_type: int = 0
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    record_type: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "timestamp_type": self.timestamp_type,
            "key": self.key,
            "value": self.value,
            "headers": [{"key": k, "value": v} for k, v in self.headers],
            "record_type": self.record_type,
        }

    @classmethod
    def from_avro(cls, raw: dict[str, Any]) -> ArchivedRecord:
        return cls(
            topic=raw["topic"],
            partition=raw["partition"],
            offset=raw["offset"],
            timestamp_ms=raw["timestamp_ms"],
            timestamp_type=raw["timestamp_type"],
            key=raw["key"],
            value=raw["value"],
            headers=tuple((h["key"], h["value"]) for h in raw["headers"]),
            record_type=raw["record_type"],
        )


class ArchiveCorruptError(Exception):
    """An archive file that is truncated, corrupt or inconsistent; says which file and where."""

    def __init__(self, path: str, reason: str, *, byte_offset: int | None, last_offset: int | None) -> None:
        where = f"at byte {byte_offset}" if byte_offset is not None else "in its header"
        after = f", after Kafka offset {last_offset}" if last_offset is not None else ", before any record"
        super().__init__(f"{path}: {reason} ({where}{after})")
        self.path = path
        self.byte_offset = byte_offset
        self.last_offset = last_offset


def date_of(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d")


def file_path(root: str, topic: str, partition: int, first_offset: int, timestamp_ms: int) -> str:
    """Where a file starting at ``first_offset`` goes (zero-padded so names sort by offset)."""
    name = f"part-{partition}-{first_offset:020d}.avro"
    return str(PurePosixPath(root) / topic / f"date={date_of(timestamp_ms)}" / name)


TOPIC_LAYOUT = "_topic.json"


def layout_path(root: str, topic: str) -> str:
    """Where the archive records how many partitions ``topic`` had when it was archived."""
    return str(PurePosixPath(root) / topic / TOPIC_LAYOUT)


def read_partition_count(fs: fsspec.AbstractFileSystem, root: str, topic: str) -> int | None:
    """The archived topic's partition count; None for archives written before it was recorded."""
    path = layout_path(root, topic)
    if not fs.exists(path):
        return None
    try:
        with fs.open(path, "rb") as fo:
            count = json.loads(fo.read())["partitions"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"partitions is {count!r}, not a positive whole number")
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        reason = f"not a valid layout file ({type(exc).__name__}: {exc})"
        raise ArchiveCorruptError(path, reason, byte_offset=None, last_offset=None) from exc
    return count


def layout_bytes(topic: str, partitions: int) -> bytes:
    """The content of a topic's layout file."""
    return json.dumps({"topic": topic, "partitions": partitions}).encode()


def parse_name(path: str) -> tuple[int, int] | None:
    """``(partition, first_offset)`` of an archive file name, or None for anything else."""
    found = _PART.match(PurePosixPath(path).name)
    return (int(found.group(1)), int(found.group(2))) if found else None


CHECKSUM_KEY = "voice.archive.records_sha256"
"""File metadata: a digest of every record the file holds. Deflate blocks carry no checksum, and
a flipped bit in one can decode into other keys, values or timestamps, or into an empty block,
without an error; the digest makes any such change an ArchiveCorruptError."""


def encode_file(records: Iterable[ArchivedRecord]) -> bytes:
    """The bytes of one archive file."""
    held = list(records)
    digest = hashlib.sha256()
    for record in held:
        _digest(digest, record)
    out = io.BytesIO()
    metadata = {CHECKSUM_KEY: digest.hexdigest()}
    writer(out, _PARSED, (r.to_avro() for r in held), codec="deflate", metadata=metadata)
    return out.getvalue()


def _digest(digest: Any, record: ArchivedRecord) -> None:
    """Every field, each with its length, so that no two records hash the same way."""
    parts: list[bytes | None] = [
        record.topic.encode(),
        b"%d %d %d %d" % (record.partition, record.offset, record.timestamp_ms, record.timestamp_type),
        record.key,
        record.value,
        record.record_type.encode() if record.record_type is not None else None,
    ]
    for key, value in record.headers:
        parts += [key.encode(), value]
    for part in parts:
        digest.update(b"-" if part is None else b"%d:" % len(part) + part)


class ArchiveConflictError(Exception):
    """An archive file already holds other records at the same offsets: another log's archive."""

    def __init__(self, path: str, offset: int) -> None:
        super().__init__(
            f"{path} already holds a different record at offset {offset}: this broker's log is not "
            "the one the archive was taken from (a fresh broker starts its offsets again at 0). "
            "Restore the archive into the broker first (`voiceagent archive restore`), or archive "
            "to another URL; the existing file was left as it was"
        )
        self.path = path
        self.offset = offset


def conflicting_offset(
    fs: fsspec.AbstractFileSystem, path: str, records: Iterable[ArchivedRecord]
) -> int | None:
    """The first offset at which the file already at ``path`` holds a different record, or None.

    Writing the same offsets again (a crash before the offsets were committed) is fine, with
    more or fewer records; a damaged leftover of such a crash is replaced too. Different records
    at the same offsets come from another log, and replacing them would lose archived events.
    """
    return compare_file(fs, path, records)[0]


def compare_file(
    fs: fsspec.AbstractFileSystem, path: str, records: Iterable[ArchivedRecord]
) -> tuple[int | None, int | None]:
    """``conflicting_offset``, and the file's last offset (None: no such file, or a damaged one)."""
    if not fs.exists(path):
        return None, None
    new = {record.offset: record for record in records}
    last = None
    try:
        for old in read_file(fs, path):
            mine = new.get(old.offset)
            # The record itself, as restore compares it: its decoded type name may be known to
            # a newer version and not an older one, which is no other log.
            if mine is not None and not same_content(mine, old):
                return old.offset, None
            last = old.offset
    except ArchiveCorruptError:
        return None, None
    return None, last


def files_meeting(known: Mapping[str, tuple[int, int | None]], first: int, last: int) -> list[str]:
    """Of a partition's files, each with its first and (once read) last offset, those that may hold
    offsets in [first, last], in order of first offset.

    A file read or written is picked when its range meets [first, last]. Names give only first
    offsets, so of the unread ones: those starting inside the range, and those starting last at
    or before it (one that starts earlier is taken to end before that one starts).
    """
    anchor = max((start for start, _ in known.values() if start <= first), default=None)

    def may_meet(start: int, end: int | None) -> bool:
        if end is not None:
            return start <= last and end >= first
        return first < start <= last or start == anchor

    return sorted((p for p, (start, end) in known.items() if may_meet(start, end)), key=lambda p: known[p][0])


def same_content(a: ArchivedRecord, b: ArchivedRecord) -> bool:
    """The same record (key, value, headers, timestamp), whatever type name each file recorded."""
    return (a.key, a.value, a.headers, a.timestamp_ms) == (b.key, b.value, b.headers, b.timestamp_ms)


def write_durably(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write a whole file so it survives a crash once this returns (fsync + atomic rename locally)."""
    if isinstance(fs, LocalFileSystem):
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as fo:
            fo.write(data)
            fo.flush()
            os.fsync(fo.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return
    # Object stores make a file visible only once the upload completes on close.
    with fs.open(path, "wb") as fo:
        fo.write(data)


def read_file(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[ArchivedRecord]:
    """The records of one archive file; ArchiveCorruptError says where it stops making sense."""
    expected = parse_name(path)
    try:
        opened = fs.open(path, "rb")
    except OSError as exc:  # a directory with a file's name, no permission...
        raise ArchiveCorruptError(path, f"cannot be read ({exc})", byte_offset=0, last_offset=None) from exc
    with opened as fo:
        last: int | None = None
        try:
            avro_reader = reader(fo)
            # Resolving against a reader schema doubles the decode cost; do it only for files
            # written with another layout of the record.
            if to_parsing_canonical_form(avro_reader.writer_schema) != _CANONICAL:
                fo.seek(0)
                avro_reader = reader(fo, _PARSED)
        except Exception as exc:  # fastavro: ValueError, EOFError, SchemaResolutionError, ...
            raise ArchiveCorruptError(
                path, f"not an archive file ({exc})", byte_offset=0, last_offset=None
            ) from exc
        records = iter(avro_reader)
        checksum = avro_reader.metadata.get(CHECKSUM_KEY)  # None in files written before it
        digest = hashlib.sha256()
        while True:
            position = fo.tell()
            try:
                raw = next(records)
            except StopIteration:
                _check_whole(path, last, checksum, digest.hexdigest(), position)
                return
            except Exception as exc:
                reason = f"truncated or corrupt block ({type(exc).__name__}: {exc})"
                raise ArchiveCorruptError(path, reason, byte_offset=position, last_offset=last) from exc
            record = ArchivedRecord.from_avro(raw)  # type: ignore[arg-type]
            _check_order(path, record, expected, last, position)
            _digest(digest, record)
            last = record.offset
            yield record


def _check_whole(path: str, last: int | None, checksum: str | None, digest: str, position: int) -> None:
    """At the end of a file: it held records (the archiver never writes an empty one), and they
    are the ones it was written with."""
    if last is None:
        raise ArchiveCorruptError(path, "holds no records", byte_offset=position, last_offset=None)
    if checksum is not None and checksum != digest:
        problem = "its records do not match the checksum it was written with"
        raise ArchiveCorruptError(path, problem, byte_offset=position, last_offset=last)


def _check_order(
    path: str, record: ArchivedRecord, expected: tuple[int, int] | None, last: int | None, position: int
) -> None:
    problem = None
    if expected is not None and record.partition != expected[0]:
        problem = f"record of partition {record.partition} in a file of partition {expected[0]}"
    elif expected is not None and last is None and record.offset != expected[1]:
        problem = f"first offset {record.offset} but the file name says {expected[1]}"
    elif last is not None and record.offset <= last:
        problem = f"offset {record.offset} does not follow {last}"
    if problem:
        raise ArchiveCorruptError(path, problem, byte_offset=position, last_offset=last)


def archive_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of an archive URL (a plain path is a local directory)."""
    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/") or "/"
