"""Codec round trips for every record type and both framings, and its refusals of bad bytes."""

import dataclasses
import json
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.avro_schema import avro_schema, fingerprint, full_name, schema_json, unwrap_newtype
from schemas.calls import CallEnded, ClockTicked, DtmfReceived
from schemas.codec import Codec, DecodeError, EncodeError, StaticSchemaIds
from schemas.envelope import derive_event_id
from schemas.registry import ALL_RECORDS

CODECS = {"single-object": Codec.single_object(), "confluent": Codec.confluent(StaticSchemaIds())}
IST = timezone(timedelta(hours=5, minutes=30))


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """A Hypothesis strategy for any field type the contract uses."""
    hint = unwrap_newtype(hint)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(max_size=12),
        int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
        bool: st.booleans(),
        bytes: st.binary(max_size=12),
        float: st.floats(allow_nan=False),
        # Any instant Avro timestamp-micros holds; non-UTC zones must come back as the same instant.
        datetime: st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.sampled_from([UTC, IST]),
        ),
    }
    if hint in simple:
        return simple[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
    if origin is dict:
        return st.dictionaries(st.text(max_size=5), strategy_for(args[1]), max_size=3)
    if dataclasses.is_dataclass(hint):
        return records_of(hint)  # type: ignore[arg-type]
    inner = next(a for a in args if a is not type(None))
    return st.none() | strategy_for(inner)


def records_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)})


def dtmf() -> DtmfReceived:
    """A fixed instance for the example-based tests below."""
    return DtmfReceived(
        tenant_id="t1",  # type: ignore[arg-type]
        call_id="c1",  # type: ignore[arg-type]
        seq=3,
        event_id=derive_event_id("c1", 3),
        occurred_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        correlation_id="corr",  # type: ignore[arg-type]
        digit="5",
        stream_ms=1200,
    )


@pytest.mark.parametrize("framing", sorted(CODECS))
@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_record_round_trips(cls: type[Any], framing: str, data: st.DataObject) -> None:
    codec = CODECS[framing]
    record = data.draw(records_of(cls))
    encoded = codec.encode(record)
    decoded = codec.decode(encoded)
    assert decoded == record
    assert type(decoded) is cls
    # Re-encoding what was decoded gives the same bytes: re-emitted events are byte-identical.
    assert codec.encode(decoded) == encoded


@settings(max_examples=50, deadline=None)
@given(record=records_of(ClockTicked))
def test_decoded_datetimes_are_utc(record: ClockTicked) -> None:
    decoded = CODECS["single-object"].decode_as(CODECS["single-object"].encode(record), ClockTicked)
    assert decoded.occurred_at.utcoffset() == timedelta(0)
    assert decoded.now == record.now


def test_single_object_header_is_marker_plus_little_endian_fingerprint() -> None:
    encoded = CODECS["single-object"].encode(dtmf())
    assert encoded[:2] == b"\xc3\x01"
    assert encoded[2:10] == fingerprint(DtmfReceived)


def test_confluent_header_carries_the_static_schema_id() -> None:
    ids = StaticSchemaIds()
    encoded = CODECS["confluent"].encode(dtmf())
    assert encoded[0] == 0
    assert int.from_bytes(encoded[1:5], "big") == ids.id_for(
        "voice.calls.v1.DtmfReceived", schema_json(DtmfReceived)
    )


def test_static_schema_ids_are_dense_and_follow_sorted_full_names() -> None:
    ids = StaticSchemaIds()
    ordered = sorted(ALL_RECORDS, key=full_name)
    assert [ids.id_for(full_name(c), schema_json(c)) for c in ordered] == list(range(1, len(ordered) + 1))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\x00\x01" + b"\x00" * 20, "bad magic"),
        (b"\xc3\x01\x01\x02", "truncated header"),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x02", "unknown schema fingerprint"),
    ],
)
def test_single_object_refuses_bad_bytes_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        CODECS["single-object"].decode(data)


@pytest.mark.parametrize("framing", sorted(CODECS))
def test_every_truncation_of_a_record_is_a_decode_error(framing: str) -> None:
    encoded = CODECS[framing].encode(dtmf())
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError):
            CODECS[framing].decode(encoded[:cut])


def test_trailing_bytes_are_refused() -> None:
    encoded = CODECS["single-object"].encode(dtmf())
    with pytest.raises(DecodeError, match="trailing"):
        CODECS["single-object"].decode(encoded + b"\x00")


def test_confluent_refuses_unknown_id_and_other_framing() -> None:
    codec = CODECS["confluent"]
    with pytest.raises(DecodeError, match="unknown schema id 9999"):
        codec.decode(b"\x00" + (9999).to_bytes(4, "big") + b"\x02")
    with pytest.raises(DecodeError, match="bad magic"):
        codec.decode(CODECS["single-object"].encode(dtmf()))


class _OldVersionIds(StaticSchemaIds):
    """A registry that still holds a version of CallEnded without its optional field."""

    def schema_for(self, schema_id: int) -> str | None:
        if schema_id == 500:
            old = avro_schema(CallEnded)
            old["fields"] = [f for f in old["fields"] if f["name"] != "ended_by"]
            return json.dumps(old)
        return super().schema_for(schema_id)


def test_confluent_reads_an_older_registered_version_into_the_current_class() -> None:
    current = CallEnded(**{**_envelope(), "reason": "completed", "ended_by": "caller"})
    body = CODECS["single-object"].encode(current)[10:]
    # The old schema has the same fields minus the trailing optional one, so the body minus
    # the last union index (0x02 + "caller") is exactly what an old writer produced.
    old_body = body[: -len(b"\x02\x0ccaller")]
    decoded = Codec.confluent(_OldVersionIds()).decode(b"\x00" + (500).to_bytes(4, "big") + old_body)
    assert decoded == CallEnded(**{**_envelope(), "reason": "completed", "ended_by": None})


class _ReferencingIds(StaticSchemaIds):
    """A registry whose CallEnded names a type it does not define (a Confluent schema reference)."""

    def schema_for(self, schema_id: int) -> str | None:
        if schema_id == 501:
            ref = {"name": "x", "type": "voice.common.Ref"}
            return json.dumps(
                {"type": "record", "name": "CallEnded", "namespace": "voice.calls.v1", "fields": [ref]}
            )
        return super().schema_for(schema_id)


def test_confluent_reports_a_registered_schema_it_cannot_parse_as_a_record_that_does_not_decode() -> None:
    with pytest.raises(DecodeError, match="schema id 501: invalid Avro schema"):
        Codec.confluent(_ReferencingIds()).decode(b"\x00" + (501).to_bytes(4, "big") + b"\x02")


def _envelope() -> dict[str, Any]:
    return {
        "tenant_id": "t1",
        "call_id": "c1",
        "seq": 1,
        "event_id": derive_event_id("c1", 1),
        "occurred_at": datetime(2025, 1, 1, tzinfo=UTC),
        "correlation_id": "x",
    }


def test_decode_as_refuses_another_record_type() -> None:
    encoded = CODECS["single-object"].encode(dtmf())
    assert CODECS["single-object"].decode_as(encoded, DtmfReceived) == dtmf()
    with pytest.raises(DecodeError, match="expected CallEnded, got DtmfReceived"):
        CODECS["single-object"].decode_as(encoded, CallEnded)


def test_naive_datetimes_and_unknown_types_cannot_be_encoded() -> None:
    naive = dataclasses.replace(dtmf(), occurred_at=datetime(2025, 1, 1))
    with pytest.raises(EncodeError, match="naive datetime"):
        CODECS["single-object"].encode(naive)
    with pytest.raises(EncodeError, match="not a registered record type"):
        CODECS["single-object"].encode(object())  # type: ignore[arg-type]


def test_derived_event_ids_are_stable_uuids_distinct_per_input() -> None:
    first = derive_event_id("call-1", 7)
    assert first == derive_event_id("call-1", 7)
    assert uuid.UUID(first).version == 5
    others = {
        derive_event_id("call-1", 8),
        derive_event_id("call-2", 7),
        derive_event_id("call-1", 7, "command"),
    }
    assert first not in others
    assert len(others) == 3
