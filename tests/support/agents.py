"""Published agent versions for tests and benches: a config with defaults, its event, the send."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from infra.kafka import make_producer
from infra.settings import KafkaSettings
from schemas.agents import AgentConfig, AgentVersionPublished
from schemas.catalog import AGENT_EVENTS
from schemas.codec import Codec, key_bytes
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CorrelationId, TenantId

_DEFAULT = AgentConfig(
    system_prompt="You are a test agent.",
    voice="Puck",
    language="en-US",
    model="gemini-live-test",
    max_duration_s=300,
    silence_timeout_s=0,
    record_calls=False,
    max_concurrent_calls=5,
    answering_machine_policy="hang_up",
    timezone="UTC",
)


def agent_config(*phone_numbers: str, **overrides: Any) -> AgentConfig:
    """An agent answering ``phone_numbers``; ``overrides`` name only what a test depends on."""
    config: AgentConfig = replace(_DEFAULT, phone_numbers=phone_numbers, **overrides)
    return config


def version_published(
    tenant_id: str, agent_id: str, config: AgentConfig, *, version: int = 1, correlation_id: str = "test"
) -> AgentVersionPublished:
    """Version ``version`` of an agent, at the seq it would have after its creation (seq 1)."""
    seq = version + 1
    return AgentVersionPublished(
        tenant_id=TenantId(tenant_id),
        agent_id=AgentId(agent_id),
        seq=seq,
        event_id=derive_event_id(agent_id, seq),
        occurred_at=datetime.now(UTC),
        correlation_id=CorrelationId(correlation_id),
        version=version,
        config=config,
    )


async def publish(kafka: KafkaSettings, event: AgentVersionPublished) -> None:
    """Append ``event`` to the agent events, as the agents aggregate would."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        await producer.send_and_wait(
            AGENT_EVENTS.name, Codec.single_object().encode(event), key=key_bytes(event.agent_id)
        )
    finally:
        await producer.stop()
