"""The edge's routing feed reads an agent published a moment ago before it refuses a number."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from edge.routing import RoutingFeed, RoutingTable
from infra.kafka import make_producer
from infra.settings import Settings
from schemas.codec import Codec
from tests.integration.helpers import create_topic
from tests.support.agents import agent_config, publish, version_published

pytestmark = pytest.mark.integration


async def test_a_refresh_applies_every_agent_event_the_log_holds(settings: Settings) -> None:
    table = RoutingTable()
    feed = RoutingFeed(settings.kafka, table, Codec.single_object())
    await feed.start()
    try:
        await asyncio.wait_for(feed.caught_up.wait(), 30)
        first, second = (f"+1555{uuid.uuid4().int % 10**7:07d}" for _ in range(2))
        await _publish(settings, first)
        earlier = asyncio.create_task(feed.refresh(10.0))
        await _publish(settings, second)  # published while the first refresh may still run
        assert await feed.refresh(10.0)
        assert table.lookup(second) is not None  # each caller reads the log's end itself
        assert await earlier
        assert table.lookup(first) is not None
        assert feed._probe is not None
        assert feed._probe.assignment() == set()  # the probe does not keep polling afterwards
    finally:
        await feed.stop()


async def test_a_refresh_that_cannot_finish_in_time_says_so(settings: Settings) -> None:
    feed = RoutingFeed(settings.kafka, RoutingTable(), Codec.single_object())
    assert await feed.refresh(1.0) is False  # never started: nothing to read with
    await feed.start()
    try:
        assert await feed.refresh(0.0001) is False  # not even the log's end can be read that fast
    finally:
        await feed.stop()


async def _publish(settings: Settings, number: str) -> None:
    agent_id = f"agent-{uuid.uuid4().hex[:8]}"
    await publish(settings.kafka, version_published("tenant-routing", agent_id, agent_config(number)))


async def test_a_feed_started_before_its_topic_exists_waits_for_it(settings: Settings) -> None:
    # An edge started before the platform's topics must not report ready with an empty table
    # for ever (every inbound call then hears "not in service"): it reads the topic once made.
    topic = f"agents-late-{uuid.uuid4().hex[:8]}"
    table = RoutingTable()
    feed = RoutingFeed(settings.kafka, table, Codec.single_object(), topic=topic)
    await feed.start()
    try:
        await asyncio.sleep(1.5)
        assert not feed.caught_up.is_set()
        await create_topic(settings.kafka, topic, partitions=2)
        number = f"+1555{uuid.uuid4().int % 10**7:07d}"
        producer = make_producer(settings.kafka)
        await producer.start()
        try:
            event = version_published("tenant-routing", "agent-late", agent_config(number))
            await producer.send_and_wait(topic, Codec.single_object().encode(event), key=b"agent-late")
        finally:
            await producer.stop()
        await asyncio.wait_for(feed.caught_up.wait(), 30)
        assert await feed.refresh(10.0)
        assert table.lookup(number) is not None
    finally:
        await feed.stop()
