"""Helpers to run a projection against a call event stream on the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.codec import Codec
from tests.support.call_stream import T0, call_events, unique

__all__ = ["T0", "call_events", "dump", "eventually", "produce", "scalar", "unique"]


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


# The call read models, each with the key its rows are compared in.
READ_MODEL_TABLES = {
    "call": "call_id",
    "call_event": "call_id, seq",
    "transcript_segment": "call_id, segment_index",
    "tool_call": "call_id, tool_call_id",
    "recording": "call_id",
    "analytics_daily": "tenant_id, agent_id, day",
}
# Every table a projection writes.
PROJECTION_TABLES = READ_MODEL_TABLES | {
    "agent": "agent_id",
    "agent_version": "agent_id, version",
    "knowledge_base": "kb_id",
    "document": "kb_id, document_id",
    "chunk": "chunk_id",
    "command_result": "correlation_id",
    "aggregate_position": "projection, aggregate_id",
}
# The Kafka checkpoints; updated_at is processing time, so left out.
CHECKPOINTS_QUERY = "(SELECT projection, topic, partition, next_offset FROM projection_checkpoint) c"
CHECKPOINTS = {CHECKPOINTS_QUERY: "1, 2, 3"}


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
