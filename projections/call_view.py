"""The call view as a pure fold over call events, and the side rows each event contributes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from projections.jsonable import event_type, payload_of
from schemas.calls import (
    AgentInterrupted,
    AgentSpeechStarted,
    CallEnded,
    CallEvent,
    CallFailed,
    CallReceived,
    MediaStreamStarted,
    RecordingAvailable,
    TelephonyStatusChanged,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallRequested,
    TranscriptSegment,
)

# CallEnded reasons that mean the call never connected; every other reason ends a connected call.
_UNCONNECTED = {"no_answer": "no_answer", "busy": "busy", "canceled": "canceled", "failed": "failed"}
_TELEPHONY_STATUS = {"ringing": "ringing", "in-progress": "in_progress", "queued": "initiated"}
FINAL_STATUSES = frozenset({"completed", "failed", "no_answer", "busy", "canceled"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CallView:
    """One row of the `call` table."""

    call_id: str
    tenant_id: str
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    agent_id: str | None = None
    agent_version: int | None = None
    twilio_call_sid: str | None = None
    status: str = "initiated"
    telephony_status: str | None = None
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    end_reason: str | None = None
    ended_by: str | None = None
    outcome: str | None = None
    failure_detail: str | None = None
    interruptions: int = 0
    tool_calls: int = 0
    first_agent_audio_ms: int | None = None
    last_seq: int = 0
    updated_at: datetime

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in dataclasses.fields(CallView))


def _replace(view: CallView, **changes: Any) -> CallView:
    # dataclasses.replace looks the fields up on every call; a projection calls this per event.
    return CallView(**({name: getattr(view, name) for name in _FIELDS} | changes))


def initial(event: CallEvent) -> CallView:
    """The view of a call before its first event (any event may be the first we see)."""
    return CallView(
        call_id=event.call_id,
        tenant_id=event.tenant_id,
        started_at=event.occurred_at,
        updated_at=event.occurred_at,
    )


def evolve(view: CallView, event: CallEvent) -> CallView:
    """The view after ``event``; events that do not change the call row only move seq."""
    return _replace(view, **_changes(view, event), last_seq=event.seq, updated_at=event.occurred_at)


def _changes(view: CallView, event: CallEvent) -> dict[str, Any]:
    """The columns ``event`` changes (one copy of the view per event: projections fold many)."""
    match event:
        case CallReceived():
            return {
                "direction": event.direction,
                "from_number": event.from_number,
                "to_number": event.to_number,
                "agent_id": event.agent_id,
                "agent_version": event.agent_version,
                "twilio_call_sid": event.twilio_call_sid or view.twilio_call_sid,
                "started_at": event.occurred_at,
            }
        case MediaStreamStarted():
            return _answered(view, event.occurred_at)
        case TelephonyStatusChanged():
            changes: dict[str, Any] = {"telephony_status": event.status}
            if view.status in FINAL_STATUSES:
                return changes
            if event.status == "in-progress":
                return changes | _answered(view, event.occurred_at)
            status = _TELEPHONY_STATUS.get(event.status)
            return changes | {"status": status} if status and view.answered_at is None else changes
        case AgentSpeechStarted():
            return {"first_agent_audio_ms": event.stream_ms} if view.first_agent_audio_ms is None else {}
        case AgentInterrupted():
            return {"interruptions": view.interruptions + 1}
        case ToolCallRequested():
            return {"tool_calls": view.tool_calls + 1}
        case CallEnded():
            status = _UNCONNECTED.get(event.reason, "completed")
            return _ended(view, event.occurred_at, status, event.reason, event.ended_by, None)
        case CallFailed():
            return _ended(view, event.occurred_at, "failed", event.reason, None, event.detail)
        case _:
            return {}


def _answered(view: CallView, at: datetime) -> dict[str, Any]:
    if view.answered_at is not None or view.status in FINAL_STATUSES:
        return {}
    return {"answered_at": at, "status": "in_progress"}


def _ended(
    view: CallView, at: datetime, status: str, reason: str, by: str | None, detail: str | None
) -> dict[str, Any]:
    talk_ms = int((at - view.answered_at).total_seconds() * 1000) if view.answered_at else 0
    return {
        "status": status,
        "ended_at": at,
        "duration_ms": max(talk_ms, 0),
        "end_reason": reason,
        "ended_by": by,
        "failure_detail": detail,
    }


def timeline_row(event: CallEvent) -> dict[str, Any]:
    """The `call_event` row of any event."""
    return {
        "call_id": event.call_id,
        "seq": event.seq,
        "tenant_id": event.tenant_id,
        "event_id": event.event_id,
        "event_type": event_type(event),
        "occurred_at": event.occurred_at,
        "payload": payload_of(event),
    }


def transcript_row(event: TranscriptSegment) -> dict[str, Any]:
    """The `transcript_segment` row; a later segment with the same index replaces it."""
    return {
        "call_id": event.call_id,
        "segment_index": event.segment_index,
        "tenant_id": event.tenant_id,
        "speaker": event.speaker,
        "text": event.text,
        "final": event.final,
        "start_ms": event.start_ms,
        "end_ms": event.end_ms,
        "occurred_at": event.occurred_at,
    }


def tool_call_row(event: ToolCallRequested | ToolCallCompleted | ToolCallFailed) -> dict[str, Any]:
    """The `tool_call` columns this event sets (upserted by call and tool call id)."""
    row: dict[str, Any] = {
        "call_id": event.call_id,
        "tool_call_id": event.tool_call_id,
        "tenant_id": event.tenant_id,
        "name": event.name,
    }
    match event:
        case ToolCallRequested():
            row |= {"status": "requested", "arguments_json": event.arguments_json}
            row["requested_at"] = event.occurred_at
        case ToolCallCompleted():
            row |= {"status": "completed", "result_json": event.result_json, "duration_ms": event.duration_ms}
            row["finished_at"] = event.occurred_at
        case ToolCallFailed():
            row |= {"status": "failed", "error": event.error, "duration_ms": event.duration_ms}
            row["finished_at"] = event.occurred_at
    return row


def recording_row(event: RecordingAvailable) -> dict[str, Any]:
    """The `recording` row of a call."""
    return {
        "call_id": event.call_id,
        "tenant_id": event.tenant_id,
        "uri": event.uri,
        "duration_ms": event.duration_ms,
        "channels": event.channels,
        "sample_rate": event.sample_rate,
        "format": event.format,
        "created_at": event.occurred_at,
    }
