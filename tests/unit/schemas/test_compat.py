"""The BACKWARD-compatibility checker on hand-made old/new schema pairs."""

import copy
from typing import Any

import pytest
from fastavro.read import SchemaResolutionError

from schemas.compat import check_resolution, example_datum, problems

OLD: dict[str, Any] = {
    "type": "record",
    "name": "Thing",
    "namespace": "test.v1",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {
            "name": "parts",
            "type": {
                "type": "array",
                "items": {"type": "record", "name": "Part", "fields": [{"name": "n", "type": "long"}]},
            },
        },
        {"name": "more_parts", "type": {"type": "array", "items": "Part"}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
    ],
}


def evolved(change: Any) -> dict[str, Any]:
    new = copy.deepcopy(OLD)
    change(new)
    return new


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = schema["fields"]
    return fields


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in _fields(schema) if f["name"] == name)


COMPATIBLE = {
    "identical": lambda s: None,
    "new optional field": lambda s: _fields(s).append(
        {"name": "x", "type": ["null", "long"], "default": None}
    ),
    "new field with default": lambda s: _fields(s).append({"name": "x", "type": "string", "default": ""}),
    "int promoted to long": lambda s: _field(s, "count").update(type="long"),
    "required made optional": lambda s: _field(s, "id").update(type=["null", "string"], default=None),
    "removed field that had a default": lambda s: _fields(s).remove(_field(s, "note")),
    "new field in nested record": lambda s: _fields(_field(s, "parts")["type"]["items"]).append(
        {"name": "m", "type": "long", "default": 0}
    ),
    "field renamed with alias": lambda s: _field(s, "id").update(name="ident", aliases=["id"]),
}

INCOMPATIBLE = {
    "new field without default": (
        lambda s: _fields(s).append({"name": "x", "type": "string"}),
        "without a default",
    ),
    "long narrowed to int": (lambda s: _field(s, "at").update(type="int"), "type changed"),
    "string to long": (lambda s: _field(s, "id").update(type="long"), "type changed"),
    "optional made required": (lambda s: _field(s, "note").update(type="string"), "null"),
    "removed field without default": (lambda s: _fields(s).remove(_field(s, "count")), "removed"),
    "nested field type changed": (
        lambda s: _field(s, "parts")["type"]["items"]["fields"][0].update(type="string"),
        "parts[].n",
    ),
    "record renamed": (lambda s: s.update(name="Other"), "renamed"),
    "timestamp logical type dropped": (lambda s: _field(s, "at").update(type="long"), "logicalType"),
}


@pytest.mark.parametrize("name", sorted(COMPATIBLE))
def test_compatible_changes_pass_both_checks(name: str) -> None:
    new = evolved(COMPATIBLE[name])
    assert problems(OLD, new) == []
    check_resolution(OLD, new)


@pytest.mark.parametrize("name", sorted(INCOMPATIBLE))
def test_incompatible_changes_are_reported(name: str) -> None:
    change, expected = INCOMPATIBLE[name]
    found = problems(OLD, evolved(change))
    assert found, f"{name} was not reported"
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    "name",
    ["new field without default", "string to long", "long narrowed to int", "nested field type changed"],
)
def test_incompatible_changes_also_fail_on_real_bytes(name: str) -> None:
    # Only the read of the old bytes may raise: "optional made required" used to pass here on
    # the parse error of the default its edit left behind, with no byte ever read.
    new = evolved(INCOMPATIBLE[name][0])
    with pytest.raises(SchemaResolutionError):
        check_resolution(OLD, new)


def test_example_datum_fills_every_field_and_optional_branch() -> None:
    datum = example_datum(OLD)
    assert set(datum) == {f["name"] for f in _fields(OLD)}
    assert datum["note"] is not None
    assert datum["parts"] == [{"n": datum["at"]}]
    assert datum["more_parts"] == datum["parts"]
    assert datum["tags"]
