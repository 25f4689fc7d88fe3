"""Time travel: a call's event timeline and its state folded at any point, with the workers' code."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from infra.eventlog.reading import EventFilter, read_range
from infra.settings import KafkaSettings
from schemas.calls import CallEvent
from schemas.catalog import CALL_EVENTS
from streams.calls.machine import fold
from streams.calls.state import CallState


@dataclass(frozen=True, slots=True)
class Timeline:
    """Every event of one call in seq order, and the state after the chosen point."""

    events: list[CallEvent]
    state: CallState | None


async def load_events(kafka: KafkaSettings, call_id: str) -> list[CallEvent]:
    """The call's events from the log, each once (redeliveries are byte-identical), in seq order."""
    by_id: dict[str, CallEvent] = {}
    async for decoded in read_range(kafka, CALL_EVENTS.name, EventFilter(call_id=call_id)):
        by_id.setdefault(decoded.record.event_id, decoded.record)
    return sorted(by_id.values(), key=lambda event: event.seq)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant (`--at`); one without an offset is UTC, as the events' times are."""
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time; try 2026-11-27T10:00:00 (UTC) or 2026-11-27T11:00:00+01:00"
        ) from None
    return _aware(instant)


def _aware(instant: datetime) -> datetime:
    # Events carry UTC times, and Python refuses to compare a naive time with them.
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def travel(events: list[CallEvent], *, at: datetime | None = None, seq: int | None = None) -> Timeline:
    """The events up to a seq or an instant (naive means UTC), and the state the calls agent had then."""
    at = None if at is None else _aware(at)
    chosen = [e for e in events if (seq is None or e.seq <= seq) and (at is None or e.occurred_at <= at)]
    return Timeline(chosen, fold(chosen))


def event_summary(event: CallEvent) -> str:
    """The fields that make an event worth reading, without the envelope."""
    skip = {"tenant_id", "call_id", "seq", "event_id", "occurred_at", "correlation_id"}
    fields = [f.name for f in dataclasses.fields(event) if f.name not in skip]
    parts = [f"{name}={_shown(getattr(event, name))}" for name in fields]
    return ", ".join(parts)


def _shown(value: object) -> str:
    # A time as people read it (not datetime.datetime(2026, ...)); text quoted, so its ends show.
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def to_json(timeline: Timeline) -> str:
    """The timeline as JSON (events and the folded state), for scripts."""
    return json.dumps(
        {
            "events": [_plain({"type": type(e).__name__, **_fields(e)}) for e in timeline.events],
            "state": _plain(_fields(timeline.state)) if timeline.state is not None else None,
        },
        indent=2,
    )


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(_fields(value))
    if isinstance(value, bytes):
        return value.hex()
    return value
