"""The edge's routing feed reads an agent published a moment ago before it refuses a number."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from edge.routing import RoutingFeed, RoutingTable
from infra.settings import Settings
from schemas.codec import Codec
from tests.support.agents import agent_config, publish, version_published

pytestmark = pytest.mark.integration


async def test_a_refresh_applies_every_agent_event_the_log_holds(settings: Settings) -> None:
    table = RoutingTable()
    feed = RoutingFeed(settings.kafka, table, Codec.single_object())
    await feed.start()
    try:
        await asyncio.wait_for(feed.caught_up.wait(), 30)
        numbers = [f"+1555{uuid.uuid4().int % 10**7:07d}" for _ in range(3)]
        for number in numbers:
            agent_id = f"agent-{uuid.uuid4().hex[:8]}"
            await publish(settings.kafka, version_published("tenant-routing", agent_id, agent_config(number)))
        # Concurrent misses share one refresh, and each sees every number published before it.
        assert await asyncio.gather(feed.refresh(10.0), feed.refresh(10.0)) == [True, True]
        assert all(table.lookup(number) is not None for number in numbers)
    finally:
        await feed.stop()


async def test_a_refresh_that_cannot_finish_in_time_says_so(settings: Settings) -> None:
    feed = RoutingFeed(settings.kafka, RoutingTable(), Codec.single_object())
    assert await feed.refresh(1.0) is False  # never started: nothing to read with
