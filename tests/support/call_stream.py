"""A synthetic but realistic call event stream (pure: shared by unit and integration tests)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import calls
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, TenantId

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def call_events(
    tenant: str, call_id: str, agent_id: str, *, start: datetime = T0, talk_s: int = 60
) -> list[calls.CallEvent]:
    """One answered call: greeting, a transcript, a barge-in, a tool call, a recording, the end."""
    seq = 0

    def env(offset_s: float) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {
            "tenant_id": TenantId(tenant),
            "call_id": CallId(call_id),
            "seq": seq,
            "event_id": derive_event_id(call_id, seq),
            "occurred_at": start + timedelta(seconds=offset_s),
            "correlation_id": CorrelationId(call_id),
        }

    return [
        calls.CallReceived(
            **env(0),
            direction="inbound",
            from_number="+15550001111",
            to_number="+15550002222",
            agent_id=AgentId(agent_id),
            agent_version=3,
            twilio_call_sid=f"CA{call_id}",
        ),
        calls.MediaStreamStarted(
            **env(1),
            stream_sid="MZ1",
            twilio_call_sid=f"CA{call_id}",
            edge_id="edge-1",
            bridge_url="ws://edge/bridge",
            bridge_token="t",
            token_expires_at=start + timedelta(minutes=5),
        ),
        calls.AgentSpeechStarted(**env(1.8), utterance_id="u1", stream_ms=800),
        calls.TranscriptSegment(
            **env(3),
            speaker="caller",
            text="I want to check my ord",
            final=False,
            start_ms=2000,
            segment_index=0,
        ),
        calls.TranscriptSegment(
            **env(4),
            speaker="caller",
            text="I want to check my order status",
            final=True,
            start_ms=2000,
            end_ms=3500,
            segment_index=0,
        ),
        calls.AgentInterrupted(**env(5), utterance_id="u1", played_ms=1200, total_ms=3000, source="edge_vad"),
        calls.ToolCallRequested(
            **env(6), tool_call_id="tc1", name="lookup_order", arguments_json='{"id": 7}'
        ),
        calls.ToolCallCompleted(
            **env(6.5),
            tool_call_id="tc1",
            name="lookup_order",
            result_json='{"status": "shipped"}',
            duration_ms=500,
        ),
        calls.RecordingAvailable(
            **env(talk_s),
            uri=f"file:///rec/{call_id}.wav",
            duration_ms=talk_s * 1000,
            channels=2,
            sample_rate=8000,
            format="wav",
        ),
        calls.CallEnded(**env(1 + talk_s), reason="caller_hung_up", ended_by="caller"),
    ]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
