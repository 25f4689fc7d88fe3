"""A call's state as JSON bytes: what the worker's Faust table stores per call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.ids import AgentId, CallId, TenantId
from streams.calls.state import SETTING_UP, CallLimits, CallState, CallStatus, MediaStream

_TIMES = ("started_at", "answered_at", "ended_at", "settling_since", "last_activity_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The state, the last input offset applied to it (so a re-delivered input is skipped), the
    limits pinned when the call started, and the ids of the latest inputs applied (so an input
    re-sent under a new offset is skipped too: ``streams.calls.repeats``)."""

    state: CallState
    input_offset: int
    limits: CallLimits
    recent_input_ids: tuple[str, ...] = ()


_BEFORE_CONVERSATION = SETTING_UP | {CallStatus.CONNECTED}


def dump(snapshot: Snapshot) -> bytes:
    """Serialise a snapshot; stable key order so equal states give equal bytes."""
    state = snapshot.state
    body: dict[str, Any] = {name: getattr(state, name) for name in CallState.__dataclass_fields__}
    for name in _TIMES:
        body[name] = _time(body[name])
    body["status"] = state.status.value
    body["tools_in_flight"] = list(state.tools_in_flight)
    body["transcript_tail"] = list(state.transcript_tail)
    if state.stream is not None:
        stream = state.stream
        body["stream"] = {
            "stream_sid": stream.stream_sid,
            "edge_id": stream.edge_id,
            "bridge_url": stream.bridge_url,
            "bridge_token": stream.bridge_token,
            "token_expires_at": stream.token_expires_at.isoformat(),
        }
    limits = snapshot.limits
    document = {
        "state": body,
        "input_offset": snapshot.input_offset,
        "limits": [
            limits.max_duration_s,
            limits.silence_timeout_s,
            limits.setup_timeout_s,
            limits.settle_timeout_s,
        ],
        "recent_input_ids": list(snapshot.recent_input_ids),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def load(data: bytes) -> Snapshot:
    """The inverse of dump."""
    document = json.loads(data)
    body = dict(document["state"])
    for name in _TIMES:
        body[name] = datetime.fromisoformat(body[name]) if body[name] is not None else None
    body["status"] = CallStatus(body["status"])
    if "agent_heard" not in body:
        # Written before the field existed: a call that got as far as a conversation has
        # heard its agent, as far as anyone can tell; re-greeting it on the next failover
        # would be worse than not greeting one whose greeting was lost.
        body["agent_heard"] = body["status"] not in _BEFORE_CONVERSATION
    body["tools_in_flight"] = tuple(body["tools_in_flight"])
    body["transcript_tail"] = tuple(body.get("transcript_tail", ()))  # absent before the field existed
    body["variables"] = dict(body.get("variables", {}))  # absent before the field existed
    body["call_id"] = CallId(body["call_id"])
    body["tenant_id"] = TenantId(body["tenant_id"])
    body["agent_id"] = AgentId(body["agent_id"])
    if body["stream"] is not None:
        stream = dict(body["stream"])
        stream["token_expires_at"] = datetime.fromisoformat(stream["token_expires_at"])
        body["stream"] = MediaStream(**stream)
    max_duration, silence, setup, settle = document["limits"]
    limits = CallLimits(
        max_duration_s=max_duration,
        silence_timeout_s=silence,
        setup_timeout_s=setup,
        settle_timeout_s=settle,
    )
    return Snapshot(
        state=CallState(**body),
        input_offset=int(document["input_offset"]),
        limits=limits,
        # Absent from snapshots written before the window existed.
        recent_input_ids=tuple(document.get("recent_input_ids", ())),
    )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
