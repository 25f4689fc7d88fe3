"""Dataclass-to-Avro mapping rules, and the topic catalog's coverage of every record."""

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from schemas.avro_schema import avro_schema, full_name, record_doc
from schemas.catalog import CATALOG, TopicSpec, topic_named, topics_for
from schemas.envelope import doc
from schemas.ids import CallId
from schemas.registry import ALL_RECORDS, record_for_fingerprint, record_for_name

AVRO_NAMESPACE = "test.v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Leaf:
    """A nested record."""

    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """Every supported field type."""

    call_id: CallId = field(metadata=doc("A NewType id."))
    text: str
    flag: bool
    ratio: float
    blob: bytes
    at: datetime
    maybe: str | None = None
    leaves: tuple[Leaf, ...] = ()
    leaf: Leaf
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class BadOptional:
    """An optional field without a default cannot evolve."""

    maybe: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NoDoc:
    x: int


def test_field_types_map_to_avro_in_declaration_order() -> None:
    schema = avro_schema(Sample)
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert [f["name"] for f in schema["fields"]] == [f.name for f in dataclasses.fields(Sample)]
    assert schema["name"] == "Sample"
    assert schema["namespace"] == "test.v1"
    assert schema["doc"] == "Every supported field type."
    assert types["call_id"] == "string"
    assert (types["text"], types["flag"], types["ratio"], types["blob"]) == (
        "string",
        "boolean",
        "double",
        "bytes",
    )
    assert types["at"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert types["maybe"] == ["null", "string"]
    assert types["labels"] == {"type": "map", "values": "string"}
    # The nested record is written in full on first use and referred to by name afterwards.
    assert types["leaves"]["items"]["name"] == "Leaf"
    assert types["leaf"] == "test.v1.Leaf"
    defaults = {f["name"]: f.get("default", "<none>") for f in schema["fields"]}
    assert (defaults["maybe"], defaults["leaves"], defaults["labels"], defaults["text"]) == (
        None,
        [],
        {},
        "<none>",
    )
    assert schema["fields"][0]["doc"] == "A NewType id."


def test_optional_field_without_default_is_refused() -> None:
    with pytest.raises(TypeError, match="must default to None"):
        avro_schema(BadOptional)


def test_record_without_docstring_is_refused() -> None:
    with pytest.raises(TypeError, match="needs a docstring"):
        record_doc(NoDoc)


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda c: c.__name__)
def test_every_record_has_a_doc_and_envelope_first(cls: type) -> None:
    schema = avro_schema(cls)
    assert schema["doc"]
    assert full_name(cls).startswith("voice.")
    names = [f["name"] for f in schema["fields"]]
    if cls.__name__ != "DeadLetter":
        assert names[0] == "tenant_id"
        assert names[1] in ("call_id", "agent_id", "kb_id")
        assert names[2:6] == ["seq", "event_id", "occurred_at", "correlation_id"]


def test_registry_finds_records_by_name_and_fingerprint() -> None:
    from schemas.avro_schema import fingerprint

    for cls in ALL_RECORDS:
        assert record_for_name(full_name(cls)) is cls
        assert record_for_fingerprint(fingerprint(cls)) is cls
    assert record_for_name("voice.calls.v1.Nope") is None


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda c: c.__name__)
def test_every_record_belongs_to_a_topic(cls: type) -> None:
    assert topics_for(cls), f"{cls.__name__} is on no topic"


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_every_record_on_a_topic_has_the_topic_key_field(spec: TopicSpec) -> None:
    assert topic_named(spec.name) is spec
    for cls in spec.record_types:
        assert spec.key in {f.name for f in dataclasses.fields(cls)}, cls


def test_topic_names_follow_the_convention_and_are_unique() -> None:
    names = [spec.name for spec in CATALOG]
    assert len(set(names)) == len(names) == 10
    assert all(n.startswith("voice.") and n.endswith(".v1") for n in names)
    with pytest.raises(KeyError):
        topic_named("voice.nope.v1")
