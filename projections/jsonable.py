"""Records to JSON-ready dicts for JSONB columns (timeline payloads, agent configs)."""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime
from typing import Any

from schemas.avro_schema import full_name

ENVELOPE_FIELDS = frozenset(
    {"tenant_id", "call_id", "agent_id", "kb_id", "seq", "event_id", "occurred_at", "correlation_id"}
)


_PLAIN = (str, int, float, bool, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)


def to_jsonable(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, datetimes to ISO text, bytes to hex."""
    if isinstance(value, _PLAIN):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def payload_of(record: Any) -> dict[str, Any]:
    """The record's own fields, without the envelope."""
    # Most fields are plain; skipping the call for them matters on a replay of millions.
    payload = {}
    for name in _payload_fields(type(record)):  # type: ignore[arg-type]
        value = getattr(record, name)
        payload[name] = value if type(value) in _PLAIN_TYPES else to_jsonable(value)
    return payload


@functools.cache
def _payload_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ENVELOPE_FIELDS)


def event_type(record: Any) -> str:
    """The short type name shown in timelines (``CallEnded``)."""
    return _short_name(type(record))  # type: ignore[arg-type]


@functools.cache
def _short_name(cls: type) -> str:
    return full_name(cls).rsplit(".", 1)[-1]
