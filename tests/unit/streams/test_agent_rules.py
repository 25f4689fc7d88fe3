"""Agent configs: a field error for each bad value, never an exception or a config Gemini refuses."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from google.genai import types

from schemas.agents import ToolSpec
from streams.sessions.live_config import DEFAULT_CONFIG, SessionPlan, live_connect_config
from streams.writers.agent_rules import MAX_TRANSFER_NUMBERS, config_errors
from streams.writers.tool_schema import MAX_DEPTH, json_schema_problem

BASE = dataclasses.replace(DEFAULT_CONFIG, silence_timeout_s=30)  # the live default 0 means "off"


def _with_tool(parameters: object, **tool: Any) -> Any:
    text = parameters if isinstance(parameters, str) else json.dumps(parameters)
    spec = ToolSpec(name="book", description="Book a slot", parameters_json=text, **tool)
    return dataclasses.replace(BASE, tools=(spec,))


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


GOOD_SCHEMAS = {
    "empty": {},
    "flat": {
        "type": "object",
        "properties": {"day": {"type": "string", "format": "date"}},
        "required": ["day"],
    },
    "enum and nullable": {
        "type": "object",
        "properties": {"size": {"type": "string", "enum": ["s", "m"], "nullable": True}},
    },
    "array of objects": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}}
        },
    },
    "any of": {"type": "object", "properties": {"v": {"anyOf": [{"type": "string"}, {"type": "number"}]}}},
    "upper-case types, as Gemini's own docs write them": {
        "type": "OBJECT",
        "properties": {"a": {"type": "STRING"}},
    },
    "as deep as allowed": _nested(MAX_DEPTH - 1),
}

BAD_SCHEMAS = {
    "not JSON": ("{", "not valid JSON"),
    "not an object": ("[1]", "must be a JSON object"),
    "root is not an object schema": ({"type": "string"}, '"type": "object"'),
    "a property type that is an object": (
        {"type": "object", "properties": {"when": {"type": {"format": "date"}}}},
        "unknown type",
    ),
    "a type list holding a list": (
        {"type": "object", "properties": {"n": {"type": [["integer"]]}}},
        "list of types",
    ),
    "a nullable type list": (
        {"type": "object", "properties": {"n": {"type": ["string", "null"]}}},
        "list of types",
    ),
    "an unknown type": ({"type": "object", "properties": {"n": {"type": "strin"}}}, "unknown type 'strin'"),
    "$schema": (
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"},
        '"$schema" is not',
    ),
    "const": (
        {"type": "object", "properties": {"k": {"type": "string", "const": "x"}}},
        '"properties.k.const"',
    ),
    "examples deep down": (
        {
            "type": "object",
            "properties": {"a": {"type": "array", "items": {"type": "integer", "examples": [1]}}},
        },
        "examples",
    ),
    "properties not an object": ({"type": "object", "properties": []}, '"properties" of the schema must be'),
    "a property that is not a schema": ({"type": "object", "properties": {"a": 3}}, "properties.a must be"),
    "required not a list of names": ({"type": "object", "required": [1]}, '"required"'),
    "too deep": (_nested(MAX_DEPTH + 1), "nested more than"),
    "a deep example (google-genai recurses into it on connect)": (
        {"type": "object", "example": json.loads("[" * 600 + "]" * 600)},
        "levels of JSON",
    ),
    "JSON nested beyond the parser": ("[" * 100_000 + "]" * 100_000, "nested more than"),
}


@pytest.mark.parametrize("schema", GOOD_SCHEMAS.values(), ids=GOOD_SCHEMAS.keys())
def test_every_accepted_schema_makes_a_live_config_google_genai_accepts(schema: dict[str, Any]) -> None:
    config = _with_tool(schema)
    assert config_errors(config) == []
    types.LiveConnectConfig.model_validate(live_connect_config(SessionPlan(call_id="c", config=config)))


@pytest.mark.parametrize(("schema", "message"), BAD_SCHEMAS.values(), ids=BAD_SCHEMAS.keys())
def test_a_bad_schema_is_a_field_error_saying_why(schema: object, message: str) -> None:
    errors = config_errors(_with_tool(schema))
    assert [field for field, _ in errors] == ["tools[0].parameters_json"]
    assert message in errors[0][1]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1", "not a valid URL"),
        ("https://hooks.example.com:99999/x", "not a valid URL"),
        ("ftp://hooks.example.com/x", "http(s)"),
        ("https:///x", "must name a host"),
        ("https://ho st.example.com/", "spaces"),
        ("https://hooks.example.com/\n", "spaces"),
        ("https://-bad.example.com/", "not a valid host name"),
        ("https://h.example/" + "x" * 3000, "at most"),
    ],
)
def test_a_bad_webhook_url_is_a_field_error(url: str, message: str) -> None:
    for config, field in (
        (dataclasses.replace(BASE, webhook_urls=(url,)), "webhook_urls[0]"),
        (_with_tool({}, webhook_url=url), "tools[0].webhook_url"),
    ):
        errors = config_errors(config)
        assert [f for f, _ in errors] == [field]
        assert message in errors[0][1]


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/a?b=c", "http://127.0.0.1:8080/hook", "http://[::1]:80/"]
)
def test_a_good_webhook_url_passes(url: str) -> None:
    assert config_errors(_with_tool({}, webhook_url=url)) == []


@pytest.mark.parametrize(("timeout_ms", "ok"), [(99, False), (100, True), (30_000, True), (30_001, False)])
def test_a_tool_timeout_is_bounded(timeout_ms: int, ok: bool) -> None:
    errors = config_errors(_with_tool({}, webhook_url="https://h.example.com/", timeout_ms=timeout_ms))
    assert (errors == []) is ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone_numbers", ("+15551234567\n",)),
        ("phone_numbers", ("+1\u0665\u0665\u0665\u0661\u0662\u0663\u0664\u0665\u0666\u0667",)),
        ("calling_window", "\u0660\u0669:00-18:00"),
        ("language", "en-US\n"),
        ("calling_window", "09:00-18:00\n"),
    ],
)
def test_a_trailing_newline_or_another_scripts_digits_are_not_accepted(field: str, value: object) -> None:
    # "$" matches before a final newline and "\\d" matches any script's digits: every pattern
    # here is matched whole, over ASCII digits.
    good = {"phone_numbers": ("+15551234567",), "language": "en-US", "calling_window": "09:00-18:00"}
    assert config_errors(dataclasses.replace(BASE, **{field: good[field]})) == []
    errors = config_errors(dataclasses.replace(BASE, **{field: value}))
    assert [f.split("[")[0] for f, _ in errors] == [field]


def test_a_tool_name_with_a_trailing_newline_is_not_accepted() -> None:
    config = dataclasses.replace(BASE, tools=(ToolSpec(name="book\n", description="", parameters_json="{}"),))
    assert [f for f, _ in config_errors(config)] == ["tools[0].name"]


def test_json_schema_problem_never_raises_on_odd_json() -> None:
    for text in [
        "null",
        "1e999",
        '"x"',
        '{"type": null}',
        '{"properties": {"a": {"type": 1}}}',
        '{"anyOf": 1}',
    ]:
        json_schema_problem(text)  # a message or None; an exception would be a 500 on publish


def test_a_webhook_tool_named_like_a_builtin_is_refused() -> None:
    # The built-in wins on its name, so the webhook would never be called.
    tool = ToolSpec(
        name="search_knowledge",
        description="our own FAQ search",
        parameters_json="{}",
        webhook_url="https://hooks.example.com/faq",
    )
    errors = config_errors(dataclasses.replace(BASE, tools=(tool,)))
    assert errors == [("tools[0].webhook_url", "'search_knowledge' is a built-in tool; rename yours")]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_schema_number_that_is_not_finite_is_refused(number: str) -> None:
    # Python's parser takes them, and json.dumps writes them back as NaN/Infinity: the setup
    # message carrying the schema to Gemini would not be JSON.
    problem = json_schema_problem(
        '{"type": "object", "properties": {"n": {"type": "number", "maximum": ' + number + "}}}"
    )
    assert problem is not None
    assert "not valid JSON" in problem


@pytest.mark.parametrize(
    ("window", "ok"), [("00:00-00:00", False), ("09:00-09:00", False), ("22:00-06:00", True)]
)
def test_a_calling_window_that_starts_where_it_ends_is_refused(window: str, ok: bool) -> None:
    # The dialer reads such a window as empty: its calls would queue for ever.
    errors = config_errors(dataclasses.replace(BASE, calling_window=window))
    assert (errors == []) is ok
    if not ok:
        assert errors == [
            ("calling_window", "start and end must differ; leave calling_window out to call at any hour")
        ]


@pytest.mark.parametrize(
    "number",
    ["14155550100", "+0155550100", "+1 415 555 0100", "+14155550100\n", "sip:desk@example.com", "+1415"],
)
def test_a_transfer_number_that_is_not_e164_is_a_field_error(number: str) -> None:
    errors = config_errors(dataclasses.replace(BASE, transfer_numbers=("+14155550100", number)))
    assert errors == [("transfer_numbers[1]", "must be E.164, such as +14155550100")]


def test_transfer_numbers_are_capped_and_listed_once() -> None:
    assert config_errors(dataclasses.replace(BASE, transfer_numbers=("+14155550100",))) == []
    many = tuple(f"+1415555{i:04d}" for i in range(MAX_TRANSFER_NUMBERS + 1))
    assert config_errors(dataclasses.replace(BASE, transfer_numbers=many[:-1])) == []
    assert config_errors(dataclasses.replace(BASE, transfer_numbers=many)) == [
        ("transfer_numbers", f"at most {MAX_TRANSFER_NUMBERS} numbers")
    ]
    twice = ("+14155550100", "+14155550100")
    assert config_errors(dataclasses.replace(BASE, transfer_numbers=twice)) == [
        ("transfer_numbers[1]", "+14155550100 is listed twice")
    ]
