"""Deterministic example instances of any contract record, for integration tests."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.avro_schema import unwrap_newtype

_BASE_TIME = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def example_value(hint: Any, n: int, name: str) -> Any:
    """A value of the field's type that differs with n (so records are distinguishable)."""
    hint = unwrap_newtype(hint)
    if hint is str:
        return f"{name}-{n}"
    if hint is bool:
        return n % 2 == 0
    if hint is int:
        return n
    if hint is float:
        return n + 0.5
    if hint is bytes:
        return f"{name}-{n}".encode()
    if hint is datetime:
        return _BASE_TIME + timedelta(microseconds=n)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return (example_value(args[0], n, name),)
    if origin is dict:
        return {f"k{n}": example_value(args[1], n, name)}
    if dataclasses.is_dataclass(hint):
        return example_record(typing.cast(type[Any], hint), n)
    inner = next(arg for arg in args if arg is not type(None))
    return example_value(inner, n, name)


def example_record(cls: type[Any], n: int = 1, **overrides: Any) -> Any:
    """An instance of cls with every field filled, optional ones included."""
    hints = typing.get_type_hints(cls)
    values = {f.name: example_value(hints[f.name], n, f.name) for f in dataclasses.fields(cls)}
    return cls(**(values | overrides))
