"""Export writers (JSON lines, Avro container files any reader opens), filters, the example's decoder."""

from __future__ import annotations

import ast
import io
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import avro.datafile
import avro.io
import fastavro

from infra.eventlog.export import export_avro, export_jsonl
from infra.eventlog.reading import DecodedEvent, EventFilter
from infra.eventlog.tail import pretty_line
from schemas.avro_schema import AVSC_DIR, full_name, version_path
from schemas.calls import CallEnded, CallReceived
from schemas.codec import Codec
from schemas.compat import example_datum
from tests.support.examples import example_record

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "examples"))
import integrator_consumer  # noqa: E402


def _event(record: object, offset: int) -> DecodedEvent:
    return DecodedEvent(
        topic="voice.calls.events.v1",
        partition=0,
        offset=offset,
        timestamp_ms=1_764_072_000_000 + offset,
        key=b"call-1",
        headers=(),
        record=record,
    )


async def _events(events: list[DecodedEvent]) -> AsyncIterator[DecodedEvent]:
    for event in events:
        yield event


EVENTS = [
    _event(example_record(CallReceived, 1, call_id="call-1", seq=1), 0),
    _event(example_record(CallEnded, 2, call_id="call-1", seq=2), 1),
    _event(example_record(CallEnded, 3, call_id="call-1", seq=3), 2),
]


async def test_avro_export_writes_one_standard_container_file_per_record_type(tmp_path: Path) -> None:
    summary = await export_avro(_events(EVENTS), tmp_path, metadata={"voice.topic": "voice.calls.events.v1"})
    assert summary.counts == {full_name(CallReceived): 1, full_name(CallEnded): 2}
    with (tmp_path / f"{full_name(CallEnded)}.avro").open("rb") as fo:
        reader = avro.datafile.DataFileReader(fo, avro.io.DatumReader())
        rows = list(reader)
        assert reader.get_meta("voice.topic") == b"voice.calls.events.v1"
        assert reader.datum_reader.writers_schema.fullname == full_name(CallEnded)
    assert [r["seq"] for r in rows] == [2, 3]
    assert rows[0]["event_id"] == EVENTS[1].record.event_id
    assert rows[0]["occurred_at"] == EVENTS[1].record.occurred_at


async def test_nothing_to_export_writes_no_file(tmp_path: Path) -> None:
    summary = await export_avro(_events([]), tmp_path / "out")
    assert summary.total == 0
    assert not (tmp_path / "out").exists()


async def test_jsonl_export_has_coordinates_type_and_fields() -> None:
    out = io.StringIO()
    await export_jsonl(_events(EVENTS), out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["type"] for line in lines] == [
        full_name(CallReceived),
        full_name(CallEnded),
        full_name(CallEnded),
    ]
    assert lines[1]["offset"] == 1
    assert lines[1]["key"] == "call-1"
    assert lines[1]["event"]["seq"] == 2
    assert lines[1]["event"]["occurred_at"] == EVENTS[1].record.occurred_at.isoformat()


def test_filters_by_key_type_and_time() -> None:
    f = EventFilter(
        call_id="call-1",
        type_name="CallEnded",
        since=datetime(2025, 11, 25, 12, 0, tzinfo=UTC),
        until=datetime(2025, 11, 25, 12, 1, tzinfo=UTC),
    )
    assert f.keeps_key(b"call-1")
    assert not f.keeps_key(b"call-2")
    assert f.keeps_type(CallEnded)
    assert not f.keeps_type(CallReceived)
    assert EventFilter(type_name="voice.calls.v1.CallEnded").keeps_type(CallEnded)
    assert f.keeps_time(1_764_072_000_000)
    assert not f.keeps_time(1_764_072_060_000)
    assert not f.keeps_time(1_764_071_999_999)


def test_pretty_line_names_the_type_key_and_seq() -> None:
    line = pretty_line(EVENTS[1])
    assert "CallEnded" in line
    assert "call-1" in line
    assert "seq=2" in line


def test_example_consumer_imports_nothing_of_ours() -> None:
    tree = ast.parse((REPO / "examples" / "integrator_consumer.py").read_text(encoding="utf-8"))
    roots = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert roots - set(sys.stdlib_module_names) - {"__future__"} == {"aiokafka", "avro"}


def test_example_consumer_decodes_every_record_type_from_the_avsc_files() -> None:
    decoder = integrator_consumer.Decoder(integrator_consumer.load_schemas(AVSC_DIR), registry=None)
    record = example_record(CallEnded, 7)
    name, fields = decoder.decode(Codec.single_object().encode(record))
    assert name == full_name(CallEnded)
    assert fields["event_id"] == record.event_id


def test_example_consumer_reads_a_record_written_with_an_older_version_in_todays_shape() -> None:
    # CallReceived as first published (197f08a), before max_duration_s and silence_timeout_s.
    old = version_path(CallReceived, bytes.fromhex("f3db474da1b05b66"))
    writer = json.loads(old.read_text(encoding="utf-8"))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(writer), example_datum(writer))
    decoder = integrator_consumer.Decoder(integrator_consumer.load_schemas(AVSC_DIR), registry=None)

    name, fields = decoder.decode(b"\xc3\x01" + bytes.fromhex(old.stem) + body.getvalue())

    assert name == full_name(CallReceived)
    assert (fields["max_duration_s"], fields["silence_timeout_s"]) == (None, None)
