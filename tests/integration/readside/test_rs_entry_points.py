"""`python -m streams.writers` as `voiceagent dev` spawns it: decides commands, stops cleanly on SIGTERM.

(In a consumer group of its own, started at the command topics' end: see ``start_writers``.)

(`python -m projections` is run by the SIGKILL test, `python -m api` by the schemathesis test.)
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from infra.kafka import make_consumer
from infra.process import tail
from infra.settings import Settings
from schemas.agents import AgentCreated, CreateAgent
from schemas.catalog import AGENT_COMMANDS, AGENT_EVENTS
from schemas.codec import Codec
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CorrelationId, EventId, TenantId
from tests.integration.helpers import drain
from tests.integration.readside.call_stream import unique
from tests.integration.writers_process import start_writers

pytestmark = pytest.mark.integration


async def test_rs_writers_entry_point_turns_a_command_into_events_and_stops_on_sigterm(
    settings: Settings, producer: AIOKafkaProducer, codec: Codec, tmp_path: Path
) -> None:
    agent_id, correlation = unique("agt"), unique("cmd")
    command = CreateAgent(
        tenant_id=TenantId(unique("tenant")),
        agent_id=AgentId(agent_id),
        seq=0,
        event_id=EventId(str(derive_event_id(correlation, 0, "command"))),
        occurred_at=datetime.now(UTC),
        correlation_id=CorrelationId(correlation),
        name="Entry point",
        created_by="test",
    )
    consumer = make_consumer(settings.kafka, AGENT_EVENTS.name, group_id=unique("rs-entry"))
    await consumer.start()
    log = tmp_path / "writers.log"
    writers = await start_writers(settings, log)
    try:
        await producer.send_and_wait(AGENT_COMMANDS.name, codec.encode(command), agent_id.encode())
        seen = await drain(
            consumer, lambda records: any(_created(codec, r.value, agent_id) for r in records), 60
        )
        assert [r for r in seen if _created(codec, r.value, agent_id)], tail(log)
        writers.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(writers.wait, 20) == 0, tail(log, 40)
    finally:
        writers.kill()
        await consumer.stop()


def _created(codec: Codec, value: bytes, agent_id: str) -> bool:
    record = codec.decode(value)
    return isinstance(record, AgentCreated) and record.agent_id == agent_id
