"""Concurrency buckets cover the whole range: a range that is not a whole number of buckets keeps
its shorter last bucket (it was dropped, and calls in it were never shown)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from projections import queries
from projections.call_projection import CallProjection
from tests.integration.readside.call_stream import T0, call_events, unique
from tests.integration.readside.test_rs_projection_unstorable import _Log, _runner, log, rs_sessions

pytestmark = pytest.mark.integration
__all__ = ["log", "rs_sessions"]  # the fixtures


async def test_the_last_shorter_bucket_is_shown_and_ends_at_the_range(
    rs_sessions: async_sessionmaker[AsyncSession], log: _Log
) -> None:
    tenant, agent = unique("tenant"), unique("agent")
    day = T0.replace(hour=0)
    late = call_events(tenant, unique("call"), agent, start=day + timedelta(hours=22), talk_s=60)
    after = call_events(tenant, unique("call"), agent, start=day + timedelta(days=1, hours=1), talk_s=60)
    runner, _ = _runner(CallProjection(topic=log.topic), rs_sessions, log)
    await runner.process(await log.calls([*late, *after]))
    async with rs_sessions() as session:
        buckets = await queries.concurrent_calls(session, tenant, day, day + timedelta(days=1), 7 * 3600)
    assert [b["bucket_start"] for b in buckets] == [day + timedelta(hours=h) for h in (0, 7, 14, 21)]
    # 21:00 to 24:00 holds the 22:00 call; the call after midnight is outside the range.
    assert [b["concurrent_calls"] for b in buckets] == [0, 0, 0, 1]


async def test_a_call_without_an_end_counts_until_now_and_never_in_a_later_bucket(
    rs_sessions: async_sessionmaker[AsyncSession], log: _Log
) -> None:
    # It counted in every bucket after its start, future dates included ('infinity' as its end).
    tenant, agent = unique("tenant"), unique("agent")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    live = call_events(tenant, unique("call"), agent, start=hour - timedelta(minutes=90))[:-1]
    ringing = call_events(tenant, unique("call"), agent, start=hour - timedelta(minutes=30))[:1]
    runner, _ = _runner(CallProjection(topic=log.topic), rs_sessions, log)
    await runner.process(await log.calls([*live, *ringing]))
    async with rs_sessions() as session:
        buckets = await queries.concurrent_calls(
            session, tenant, hour - timedelta(hours=2), hour + timedelta(hours=3), 3600
        )
    assert [b["bucket_start"] for b in buckets] == [hour + timedelta(hours=h) for h in range(-2, 3)]
    # The ringing call holds a line from its start; neither call is shown after the current hour.
    assert [b["concurrent_calls"] for b in buckets] == [1, 2, 2, 0, 0]
