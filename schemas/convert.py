"""Per-class converters between record dataclasses and the dicts fastavro reads and writes.

Built once per class from the type hints, so encoding does no reflection and no deep copy
(``dataclasses.asdict`` would copy every value and turn tuples of records into lists).
"""

import dataclasses
import datetime
import types
import typing
from collections.abc import Callable
from typing import Any

from schemas.avro_schema import unwrap_newtype

Convert = Callable[[Any], Any]


class NaiveDatetimeError(ValueError):
    """A datetime without a timezone reached the encoder; the contract is UTC instants."""


def _check_aware(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        raise NaiveDatetimeError(f"naive datetime {value.isoformat()}: use a tz-aware UTC value")
    return value


def _optional(inner: Convert) -> Convert:
    return lambda v: None if v is None else inner(v)


def _to_avro(hint: Any) -> Convert | None:
    """How to turn a field value into what fastavro writes; None means 'as it is'."""
    hint = unwrap_newtype(hint)
    if hint is datetime.datetime:
        return _check_aware
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = _to_avro(next(a for a in args if a is not type(None)))
        return None if inner is None else _optional(inner)
    if origin is tuple:
        item = _to_avro(args[0])
        # fastavro writes any sequence as an array, so tuples of plain values pass unchanged.
        return None if item is None else lambda v: [item(x) for x in v]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return encoder(hint)
    return None


def _from_avro(hint: Any) -> Convert | None:
    """How to turn what fastavro read into a field value; None means 'as it is'."""
    hint = unwrap_newtype(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = _from_avro(next(a for a in args if a is not type(None)))
        return None if inner is None else _optional(inner)
    if origin is tuple:
        item = _from_avro(args[0])
        return tuple if item is None else lambda v: tuple(item(x) for x in v)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return decoder(hint)
    return None


def _plan(cls: type, pick: Callable[[Any], Convert | None]) -> list[tuple[str, Convert | None]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, pick(hints[f.name])) for f in dataclasses.fields(cls)]


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {}
_DECODERS: dict[type, Callable[[dict[str, Any]], Any]] = {}


def encoder(cls: type) -> Callable[[Any], dict[str, Any]]:
    """A function from an instance of ``cls`` to the dict fastavro writes."""
    if cls not in _ENCODERS:
        plan = _plan(cls, _to_avro)

        def encode(obj: Any) -> dict[str, Any]:
            return {
                name: getattr(obj, name) if conv is None else conv(getattr(obj, name)) for name, conv in plan
            }

        _ENCODERS[cls] = encode
    return _ENCODERS[cls]


def decoder(cls: type) -> Callable[[dict[str, Any]], Any]:
    """A function from the dict fastavro read to an instance of ``cls``."""
    if cls not in _DECODERS:
        converted = [(name, conv) for name, conv in _plan(cls, _from_avro) if conv is not None]

        def decode(raw: dict[str, Any]) -> Any:
            for name, conv in converted:
                raw[name] = conv(raw[name])
            return cls(**raw)

        _DECODERS[cls] = decode
    return _DECODERS[cls]
