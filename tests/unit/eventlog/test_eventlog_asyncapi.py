"""The AsyncAPI document is valid AsyncAPI 3.0.0, matches the catalog, and is up to date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infra.eventlog import asyncapi
from schemas.avro_schema import avsc_path, full_name
from schemas.catalog import CATALOG

DOCS = Path(asyncapi.__file__).resolve().parents[2] / "docs"
OFFICIAL = json.loads((DOCS / "asyncapi-3.0.0-schema.json").read_text(encoding="utf-8"))


def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(OFFICIAL)


def test_committed_document_is_the_generated_one() -> None:
    assert asyncapi.DOC_PATH.read_text(encoding="utf-8") == asyncapi.render()
    assert asyncapi.main(["--check"]) == 0


def test_document_validates_against_the_official_asyncapi_3_schema() -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(asyncapi.document())]
    assert errors == []


@pytest.mark.parametrize(
    ("where", "breakage"),
    [
        (
            "an avro payload",
            lambda d: _first(d["components"]["messages"])["payload"]["schema"].update(type="rec"),
        ),
        ("a kafka binding", lambda d: _first(d["channels"])["bindings"]["kafka"].update(partitions=-1)),
        ("a channel", lambda d: _first(d["channels"]).update(address=7)),
    ],
)
def test_the_official_schema_catches_a_broken_document(where: str, breakage: Any) -> None:
    doc = asyncapi.document()
    breakage(doc)
    assert list(_validator().iter_errors(doc)), f"a broken {where} passed validation"


def _first(mapping: dict[str, Any]) -> Any:
    return next(iter(mapping.values()))


def test_every_catalog_topic_is_a_channel_with_its_key_partitions_and_record_types() -> None:
    doc = asyncapi.document()
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(channels) == {spec.name for spec in CATALOG}
    for spec in CATALOG:
        channel = channels[spec.name]
        assert channel["bindings"]["kafka"]["partitions"] == spec.partitions
        assert set(channel["messages"]) == {cls.__name__ for cls in spec.record_types}
        for cls in spec.record_types:
            message = doc["components"]["messages"][cls.__name__]
            assert message["name"] == full_name(cls)
            assert message["payload"]["schemaFormat"] == "application/vnd.apache.avro+json;version=1.9.0"
            assert message["payload"]["schema"] == json.loads(avsc_path(cls).read_text(encoding="utf-8"))
            assert spec.key in message["bindings"]["kafka"]["key"]["description"]


def test_every_operation_receives_from_its_channel_only_messages_of_that_channel() -> None:
    doc = asyncapi.document()
    for operation in doc["operations"].values():
        channel_id = operation["channel"]["$ref"].removeprefix("#/channels/")
        names = {ref["$ref"].split("/")[-1] for ref in operation["messages"]}
        assert operation["action"] == "receive"
        assert names == set(doc["channels"][channel_id]["messages"])
