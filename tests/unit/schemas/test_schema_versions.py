"""Published schema versions: kept by the generator, and read by the codec long after a change."""

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from fastavro import parse_schema, schemaless_writer

from schemas.avro_schema import (
    avsc_path,
    fingerprint,
    published_versions,
    stale_files,
    version_path,
    versions_dir,
    write_all,
)
from schemas.calls import CallReceived
from schemas.codec import Codec, DecodeError
from schemas.compat import example_datum
from schemas.registry import ALL_RECORDS, Record

AVRO_NAMESPACE = "test.v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Thing:
    """A record as first published."""

    tenant_id: str
    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ThingWithNote:
    """A record as first published."""

    tenant_id: str
    n: int
    note: str | None = None


# The same record one compatible change later: one more optional field, as the docs allow.
ThingWithNote.__name__ = "Thing"


def _encode(codec: Codec, record: object) -> bytes:
    return codec.encode(cast(Record, record))  # a record of a test schema, not of the registry


def test_a_record_written_before_a_compatible_change_decodes_after_it(tmp_path: Path) -> None:
    write_all([Thing], tmp_path)
    old_bytes = _encode(Codec.single_object([Thing], tmp_path), Thing(tenant_id="t", n=7))

    write_all([ThingWithNote], tmp_path)

    assert stale_files([ThingWithNote], tmp_path) == []
    assert set(published_versions(ThingWithNote, tmp_path)) == {
        fingerprint(Thing),
        fingerprint(ThingWithNote),
    }
    codec = Codec.single_object([ThingWithNote], tmp_path)
    assert codec.decode_as(old_bytes, ThingWithNote) == ThingWithNote(tenant_id="t", n=7, note=None)
    new = ThingWithNote(tenant_id="t", n=8, note="hi")
    assert codec.decode_as(_encode(codec, new), ThingWithNote) == new


def test_without_the_published_version_the_old_record_is_unknown(tmp_path: Path) -> None:
    old_bytes = _encode(Codec.single_object([Thing], tmp_path), Thing(tenant_id="t", n=7))
    write_all([ThingWithNote], tmp_path)
    with pytest.raises(DecodeError, match="unknown schema fingerprint"):
        Codec.single_object([ThingWithNote], tmp_path).decode(old_bytes)


def test_a_published_version_is_never_rewritten_or_forgotten(tmp_path: Path) -> None:
    write_all([Thing], tmp_path)
    first = version_path(Thing, fingerprint(Thing), tmp_path)
    first.write_text(first.read_text(encoding="utf-8").replace("first published", "published"))
    before = first.read_text(encoding="utf-8")

    write_all([ThingWithNote], tmp_path)
    write_all([Thing], tmp_path)  # back to the old schema: its version is already published

    assert first.read_text(encoding="utf-8") == before  # a doc change keeps the fingerprint
    assert avsc_path(Thing, tmp_path).read_text(encoding="utf-8") != before
    assert len(published_versions(Thing, tmp_path)) == 2


def test_check_reports_an_unpublished_current_schema_and_a_misnamed_version(tmp_path: Path) -> None:
    write_all([Thing], tmp_path)
    published = version_path(Thing, fingerprint(Thing), tmp_path)
    misnamed = published.with_name("00" * 8 + ".avsc")
    published.rename(misnamed)

    problems = stale_files([Thing], tmp_path)

    assert any(p.startswith("unpublished") and str(published) in p for p in problems)
    assert any(p.startswith("misnamed") and str(misnamed) in p for p in problems)


def test_check_reports_a_version_filed_under_another_record(tmp_path: Path) -> None:
    write_all([Thing], tmp_path)
    elsewhere = tmp_path / "v1" / "Other" / version_path(Thing, fingerprint(Thing), tmp_path).name
    elsewhere.parent.mkdir()
    elsewhere.write_text(avsc_path(Thing, tmp_path).read_text(encoding="utf-8"))
    assert any(p.startswith("misplaced") for p in stale_files([Thing], tmp_path))


OLDER_VERSIONS = [
    (cls, path)
    for cls in ALL_RECORDS
    for path in sorted(versions_dir(cls).glob("*.avsc"))
    if path.stem != fingerprint(cls).hex()
]


@pytest.mark.parametrize(
    ("cls", "path"), OLDER_VERSIONS, ids=lambda v: v.stem if isinstance(v, Path) else v.__name__
)
def test_the_codec_reads_every_older_published_version_into_the_current_class(
    cls: type[Any], path: Path
) -> None:
    writer = json.loads(path.read_text(encoding="utf-8"))
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(writer), example_datum(writer))
    decoded = Codec.single_object().decode(b"\xc3\x01" + bytes.fromhex(path.stem) + body.getvalue())
    assert type(decoded) is cls


def test_a_call_received_before_its_limits_were_recorded_decodes_without_them() -> None:
    # The first published CallReceived had no max_duration_s / silence_timeout_s (commit 197f08a).
    path = version_path(CallReceived, bytes.fromhex("f3db474da1b05b66"))
    writer = json.loads(path.read_text(encoding="utf-8"))
    datum = example_datum(writer)
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(writer), datum)

    value = b"\xc3\x01" + bytes.fromhex(path.stem) + body.getvalue()

    decoded = Codec.single_object().decode_as(value, CallReceived)

    assert (decoded.call_id, decoded.seq) == (datum["call_id"], datum["seq"])
    assert (decoded.max_duration_s, decoded.silence_timeout_s) == (None, None)
