"""A batch of call events folded in memory: the rows one batch writes, as the per-event path would."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any

from projections import call_view
from schemas import calls

DayKey = tuple[str, str, date]


@dataclass
class CallBatch:
    """The final state of every row a batch touches; later events win, as applying them in turn would."""

    views: dict[str, call_view.CallView]
    changed: set[str] = field(default_factory=set)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    transcripts: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    tool_calls: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirty_days: set[DayKey] = field(default_factory=set)
    refused: list[tuple[int, str]] = field(default_factory=list)

    def call_rows(self) -> list[dict[str, Any]]:
        return [self.views[call_id].row() for call_id in sorted(self.changed)]


def fold_batch(existing: dict[str, call_view.CallView], events: list[calls.CallEvent]) -> CallBatch:
    """Fold ``events`` (in order) over the stored views; an event of another tenant is refused."""
    batch = CallBatch(views=dict(existing))
    for index, event in enumerate(events):
        known = batch.views.get(event.call_id)
        before = known or call_view.initial(event)
        if before.tenant_id != event.tenant_id:
            batch.refused.append((index, f"call {event.call_id} belongs to another tenant"))
            continue
        after = call_view.evolve(before, event)
        batch.views[event.call_id] = after
        batch.changed.add(event.call_id)
        batch.dirty_days |= analytics_days(known, after)
        batch.timeline.append(call_view.timeline_row(event))
        _side_rows(batch, event)
    return batch


def day_of(view: call_view.CallView) -> DayKey | None:
    if view.agent_id is None:
        return None
    return view.tenant_id, view.agent_id, view.started_at.astimezone(UTC).date()


# What analytics_daily reads of a call row. Most events (transcript pieces, marks, usage,
# resumption handles) change none of it, and recomputing a day scans all of that day's calls.
_ANALYTICS_FIELDS = (
    "agent_id",
    "started_at",
    "answered_at",
    "ended_at",
    "status",
    "duration_ms",
    "interruptions",
    "tool_calls",
    "first_agent_audio_ms",
)


def analytics_days(before: call_view.CallView | None, after: call_view.CallView) -> set[DayKey]:
    """The analytics days to recompute after a call row went from ``before`` (None: no row yet).

    Both days when the figures changed: a call whose start moves must leave the old day's too.
    """
    if before is not None and all(getattr(before, f) == getattr(after, f) for f in _ANALYTICS_FIELDS):
        return set()
    return {day for day in (day_of(before) if before else None, day_of(after)) if day is not None}


def _side_rows(batch: CallBatch, event: calls.CallEvent) -> None:
    match event:
        case calls.TranscriptSegment():
            batch.transcripts[(event.call_id, event.segment_index)] = call_view.transcript_row(event)
        case calls.ToolCallRequested() | calls.ToolCallCompleted() | calls.ToolCallFailed():
            key = (event.call_id, event.tool_call_id)
            # An upsert sets only the columns its event carries, so merging keeps what earlier ones set.
            batch.tool_calls[key] = batch.tool_calls.get(key, {}) | call_view.tool_call_row(event)
        case calls.RecordingAvailable():
            batch.recordings[event.call_id] = call_view.recording_row(event)
        case _:
            return
