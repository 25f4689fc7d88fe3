"""Two projection processes on one schema: the analytics day they share ends with both calls."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from projections.call_projection import CallProjection
from schemas.codec import Codec
from tests.integration.readside.call_stream import call_events, scalar, unique
from tests.integration.readside.running import make_runner

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class _Record:
    """A consumed record as a partition's consumer would hand it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


async def test_rs_concurrent_batches_on_one_day_both_count_in_analytics(
    sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer, codec: Codec
) -> None:
    tenant, agent = unique("tenant"), unique("agent")
    both_applied = asyncio.Event()
    arrived = 0

    async def meet_before_commit() -> None:
        # Hold each transaction open until the other has applied and recomputed too (or has
        # waited a while on the day lock): without the lock both recomputes would miss the
        # other's uncommitted call and the day would end with one call.
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_applied.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both_applied.wait(), 2.0)

    async def one_partition(partition: int) -> None:
        call_id = unique("call")
        records = [
            _Record("rs-concurrent", partition, offset, call_id.encode(), codec.encode(event))
            for offset, event in enumerate(call_events(tenant, call_id, agent, talk_s=30))
        ]
        runner = make_runner(CallProjection(), sessions, producer, codec, before_commit=meet_before_commit)
        await runner.process(records)
        assert runner.applied == len(records)

    await asyncio.gather(one_partition(0), one_partition(1))

    sql = "SELECT sum(calls) FROM analytics_daily WHERE tenant_id = :tenant AND agent_id = :agent"
    calls = await scalar(sessions, sql, tenant=tenant, agent=agent)
    assert calls == 2
