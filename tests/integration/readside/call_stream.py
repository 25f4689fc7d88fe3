"""A synthetic but realistic call event stream, and helpers to run a projection against it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas import calls
from schemas.codec import Codec
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


async def produce(producer: AIOKafkaProducer, codec: Codec, topic: str, events: list[Any], key: str) -> None:
    for event in events:
        await producer.send_and_wait(topic, codec.encode(event), key.encode())


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.1)


async def scalar(sessions: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> Any:
    async with sessions() as session:
        return (await session.execute(text(sql), params)).scalar()


READ_MODEL_TABLES = {
    "call": "call_id",
    "call_event": "call_id, seq",
    "transcript_segment": "call_id, segment_index",
    "tool_call": "call_id, tool_call_id",
    "recording": "call_id",
    "analytics_daily": "tenant_id, agent_id, day",
}


async def dump(
    sessions: async_sessionmaker[AsyncSession], tables: dict[str, str] = READ_MODEL_TABLES
) -> dict[str, Any]:
    """Every row of the call read models, in key order (for comparing two builds)."""
    out: dict[str, Any] = {}
    async with sessions() as session:
        for table, order in tables.items():
            rows = await session.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))
            out[table] = [dict(r) for r in rows.mappings().all()]
    return out


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
