"""Whether a tool's arguments schema is one Gemini's function declarations accept: pure, field-level."""

from __future__ import annotations

from typing import Any

import pydantic
from google.genai import types

from infra.json_depth import nesting_depth_exceeds
from infra.strict_json import loads_strict

JSON_SCHEMA_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
MAX_DEPTH = 10
"""Nesting of schemas inside schemas; a phone agent's arguments never need more."""
MAX_JSON_DEPTH = 4 * MAX_DEPTH
"""Nesting of any JSON value in the schema (a schema level is two: "properties", then the name)."""

_CHILD_SCHEMA = ("items",)
_CHILD_SCHEMA_MAPS = ("properties", "defs", "$defs")
_CHILD_SCHEMA_LISTS = ("anyOf", "any_of")


def json_schema_problem(text: str) -> str | None:
    """Why ``text`` is not a usable JSON Schema for function arguments, or None."""
    try:
        # NaN and Infinity are not JSON (RFC 8259), though Python's parser takes them: the setup
        # message that carries the schema to Gemini would not be JSON either.
        schema = loads_strict(text)
    except RecursionError:
        return f"nested more than {MAX_DEPTH} levels deep"
    except ValueError as err:
        return f"not valid JSON: {err}"
    if not isinstance(schema, dict):
        return "must be a JSON object"
    # Every value counts, not only child schemas: google-genai recurses into "example" and
    # "default" as well when it builds the declaration on connect.
    if nesting_depth_exceeds(schema, MAX_JSON_DEPTH):
        return f"nested more than {MAX_JSON_DEPTH} levels of JSON deep"
    if str(schema.get("type", "object")).lower() != "object":
        return 'arguments schema must have "type": "object"'
    problem = _shape_problem(schema)
    if problem is not None:
        return problem
    # The declaration is rebuilt from this text on every connect (streams/sessions/live_config):
    # whatever google-genai refuses there must be refused here, on publish, with the reason.
    try:
        types.Schema.model_validate(schema)
    except pydantic.ValidationError as err:
        return _explain(err)
    except (ValueError, TypeError, AttributeError) as err:  # genai's own enum coercion raises these
        return f"not a schema Gemini accepts: {err}"
    return None


def _shape_problem(root: dict[str, Any]) -> str | None:
    # Iterative, so a hostile schema cannot exhaust the stack before the depth check says no.
    stack: list[tuple[str, object, int]] = [("", root, 0)]
    while stack:
        path, node, depth = stack.pop()
        where = path or "the schema"
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if not isinstance(node, dict):
            return f"{where} must be a schema object"
        problem = _type_problem(where, node.get("type"))
        if problem is None:
            problem = _required_problem(where, node.get("required", []))
        if problem is not None:
            return problem
        for key in _CHILD_SCHEMA:
            if key in node:
                stack.append((f"{path}.{key}".lstrip("."), node[key], depth + 1))
        for key in _CHILD_SCHEMA_MAPS:
            children = node.get(key, {})
            if not isinstance(children, dict):
                return f'"{key}" of {where} must be an object'
            stack += [(f"{path}.{key}.{name}".lstrip("."), sub, depth + 1) for name, sub in children.items()]
        for key in _CHILD_SCHEMA_LISTS:
            options = node.get(key, [])
            if not isinstance(options, list):
                return f'"{key}" of {where} must be a list of schemas'
            stack += [(f"{path}.{key}[{i}]".lstrip("."), sub, depth + 1) for i, sub in enumerate(options)]
    return None


def _type_problem(where: str, kind: object) -> str | None:
    if kind is None:
        return None
    if isinstance(kind, list):
        return f'{where} has a list of types; Gemini takes one type (use "nullable": true for null)'
    if not isinstance(kind, str) or kind.lower() not in JSON_SCHEMA_TYPES:
        return f"{where} has an unknown type {kind!r}"
    return None


def _required_problem(where: str, required: object) -> str | None:
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return f'"required" of {where} must be a list of property names'
    return None


def _explain(err: pydantic.ValidationError) -> str:
    first = err.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f'"{location}" is not supported in Gemini function declarations'
    return f"{location or 'the schema'}: {first['msg']}"
