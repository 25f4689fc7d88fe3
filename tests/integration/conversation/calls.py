"""Helpers for conversation tests: agents, knowledge, workers, the inbound webhook, the event log."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import TopicPartition
from twilio.request_validator import RequestValidator

from edge.server import EdgeServer
from infra.db import database_url
from infra.kafka import make_consumer
from infra.migrate import upgrade_database
from infra.settings import Settings
from schemas.catalog import CALL_EVENTS, CALL_INPUTS
from schemas.codec import Codec
from streams.standin.server import StandIn
from tests.integration.helpers import start_group_at_end
from tests.support.agents import agent_config, publish, version_published
from tests.support.workers import start_streams_worker

pytestmark = pytest.mark.integration

CODEC = Codec.single_object()
AUTH_TOKEN = "conversation-test-token"

TENANT = "tenant-conv"
NUMBER = "+15550007777"


async def _publish_agent(settings: Settings, agent_id: str, kb_id: str) -> None:
    config = agent_config(
        NUMBER,
        system_prompt="You are the booking line of Chez Test.",
        knowledge_base_ids=(kb_id,),
    )
    event = version_published(TENANT, agent_id, config, correlation_id="conversation-test")
    await publish(settings.kafka, event)


async def until_routed(server: EdgeServer, agent_id: str, within: float = 30.0) -> None:
    """Wait until the edge's routing table, which follows the agent events, sends calls to
    ``NUMBER`` to ``agent_id`` (the tests share the number: the latest agent published takes it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within  # a guard only
    while (route := server.routing.lookup(NUMBER)) is None or route.agent_id != agent_id:
        if loop.time() > deadline:
            raise AssertionError(f"the edge does not route {NUMBER} to {agent_id}: {route}")
        await asyncio.sleep(0.05)


def _seed_knowledge(settings: Settings, kb_id: str) -> None:
    upgrade_database(settings.database)
    url = database_url(settings.database).replace("postgresql+psycopg://", "postgresql://")
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO knowledge_base (kb_id, tenant_id, name, created_at) VALUES (%s, %s, %s, %s)",
            (kb_id, TENANT, "Restaurant facts", now),
        )
        conn.execute(
            "INSERT INTO document (kb_id, document_id, tenant_id, title, content_type, size_bytes, added_at)"
            " VALUES (%s, 'doc-1', %s, 'Opening hours', 'text/plain', 60, %s)",
            (kb_id, TENANT, now),
        )
        conn.execute(
            "INSERT INTO chunk (chunk_id, kb_id, document_id, tenant_id, ordinal, text)"
            " VALUES (%s, %s, 'doc-1', %s, 0, %s)",
            (
                f"{kb_id}-c0",
                kb_id,
                TENANT,
                "Opening hours: Chez Test opens daily from nine in the morning until late.",
            ),
        )


async def fresh_app_id(settings: Settings, prefix: str) -> str:
    """A calls app id whose group starts at the current end of the call inputs."""
    app_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await start_group_at_end(settings.kafka, app_id, CALL_INPUTS.name)
    return app_id


# Short group timeouts, so that a killed worker's calls move on within seconds.
FAST_FAILOVER = {
    "VOICE_STREAMS__SESSION_TIMEOUT_S": "2.0",
    "VOICE_STREAMS__HEARTBEAT_INTERVAL_S": "0.3",
    "VOICE_STREAMS__REBALANCE_TIMEOUT_S": "3.0",
    "VOICE_STREAMS__TICK_INTERVAL_S": "0.5",
}


def _start_worker(
    settings: Settings, standin: StandIn, log: Path, *, app_id: str, worker_id: str = "worker-1"
) -> subprocess.Popen[bytes]:
    return start_streams_worker(
        settings,
        log,
        app_id=app_id,
        worker_id=worker_id,
        gemini_base_url=standin.base_url,
        gemini_ca_file=str(standin.certs.ca_file),
        extra_env=FAST_FAILOVER,
    )


async def _answer_inbound(edge_settings: Settings) -> dict[str, str]:
    """Twilio's POST /twilio/voice for a new inbound call; returns the <Parameter>s of the TwiML."""
    url = edge_settings.twilio.public_base_url + "/twilio/voice"
    form = {
        "CallSid": "CA" + uuid.uuid4().hex,
        "From": "+15550001234",
        "To": NUMBER,
        "AccountSid": "AC" + "0" * 32,
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    async with httpx.AsyncClient() as client:
        response = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.text
    return dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)"', response.text))


class EventLog:
    """The call's events as the calls agent appends them."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.events: list[Any] = []
        self._seen: set[str] = set()

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in sorted(self.events, key=lambda e: e.seq)]

    async def follow(self, settings: Settings, until: Callable[[EventLog], bool], within: float) -> None:
        consumer = make_consumer(settings.kafka, group_id=None)
        await consumer.start()
        try:
            parts = [
                TopicPartition(CALL_EVENTS.name, p)
                for p in consumer.partitions_for_topic(CALL_EVENTS.name) or ()
            ]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            seen = self._seen

            async def loop() -> None:
                while not until(self):
                    for records in (await consumer.getmany(timeout_ms=200)).values():
                        for record in records:
                            if record.key == self.call_id.encode() and record.value is not None:
                                event = CODEC.decode(record.value)
                                if event.event_id not in seen:
                                    seen.add(event.event_id)
                                    self.events.append(event)

            try:
                await asyncio.wait_for(loop(), within)
            except TimeoutError:
                raise AssertionError(f"timed out; events so far: {self.kinds()}") from None
        finally:
            await consumer.stop()
