"""Start the Faust writers (``python -m streams.writers``) for a test and wait until they decide."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from infra.kafka import make_consumer
from infra.process import tail
from infra.settings import Settings
from schemas.agents import AgentCreated, CreateAgent
from schemas.catalog import AGENT_COMMANDS, AGENT_EVENTS, KNOWLEDGE_COMMANDS, KNOWLEDGE_EVENTS
from schemas.codec import Codec
from schemas.ids import AgentId, CorrelationId, EventId, KnowledgeBaseId, TenantId
from schemas.knowledge import CreateKnowledgeBase, KnowledgeBaseCreated
from tests.integration.helpers import drain, start_group_at_end
from tests.integration.readside.subprocess_service import spawn
from tests.support.call_stream import unique


async def start_writers(
    settings: Settings,
    log: Path,
    *,
    app_id: str | None = None,
    module: str = "streams.writers",
    **env: str,
) -> subprocess.Popen[bytes]:
    """A writers worker; without ``app_id``, in a new consumer group started at the commands' end.

    Tests share the session's command topics; a new group at the earliest offset would first
    re-decide every earlier test's commands. Pass the ``app_id`` of a stopped worker to restart it.
    """
    if app_id is None:
        app_id = unique("writers")
        for topic in (AGENT_COMMANDS.name, KNOWLEDGE_COMMANDS.name):
            await start_group_at_end(settings.kafka, app_id, topic)
    return spawn(module, ["--app-id", app_id], settings, log, **env)


def app_id_of(worker: subprocess.Popen[bytes]) -> str:
    """The ``--app-id`` a worker was started with."""
    argv = [str(arg) for arg in worker.args]  # type: ignore[union-attr]
    return argv[argv.index("--app-id") + 1]


async def wait_until_deciding(
    settings: Settings, producer: AIOKafkaProducer, codec: Codec, log: Path, timeout_s: float = 90
) -> None:
    """Send a probe command to each writer and wait for its event."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in (AGENT_EVENTS.name, KNOWLEDGE_EVENTS.name)
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        agent, kb = unique("probe-agt"), unique("probe-kb")
        envelope: dict[str, Any] = {
            "tenant_id": TenantId(unique("probe")),
            "seq": 0,
            "occurred_at": datetime.now(UTC),
            "name": "probe",
        }
        probes: list[tuple[str, CreateAgent | CreateKnowledgeBase, str]] = [
            (
                AGENT_COMMANDS.name,
                CreateAgent(**envelope, agent_id=AgentId(agent), created_by="test", **_ids()),
                agent,
            ),
            (
                KNOWLEDGE_COMMANDS.name,
                CreateKnowledgeBase(**envelope, kb_id=KnowledgeBaseId(kb), **_ids()),
                kb,
            ),
        ]
        for topic, command, key in probes:
            await producer.send_and_wait(topic, codec.encode(command), key.encode())

        def both(seen: list[ConsumerRecord[bytes, bytes]]) -> bool:
            keys = (agent.encode(), kb.encode())
            kinds = {type(codec.decode(r.value)) for r in seen if r.key in keys and r.value}
            return {AgentCreated, KnowledgeBaseCreated} <= kinds

        try:
            await drain(consumer, both, timeout_s)
        except TimeoutError:
            raise AssertionError(f"the writers did not start deciding:\n{tail(log, 60)}") from None
    finally:
        await consumer.stop()


def _ids() -> dict[str, Any]:
    return {"event_id": EventId(unique("probe")), "correlation_id": CorrelationId(unique("probe"))}
