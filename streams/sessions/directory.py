"""Every published agent version, folded from the agent events topic (the worker's own view)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer

from schemas.agents import AgentConfig, AgentVersionPublished
from schemas.catalog import AGENT_EVENTS
from schemas.codec import Codec, DecodeError

log = logging.getLogger(__name__)


class AgentDirectory:
    """Versions are immutable, so a version once seen never changes: a plain dict is enough."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, int], AgentConfig] = {}
        self._changed = asyncio.Condition()

    def apply(self, event: object) -> None:
        if isinstance(event, AgentVersionPublished):
            self._versions[(event.agent_id, event.version)] = event.config

    def get(self, agent_id: str, version: int) -> AgentConfig | None:
        return self._versions.get((agent_id, version))

    async def wait_for(self, agent_id: str, version: int, timeout_s: float) -> AgentConfig | None:
        """The version's config, waiting briefly for the topic to catch up (a call can race it)."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.get(agent_id, version) is not None), timeout_s
                )
            except TimeoutError:
                return None
        return self.get(agent_id, version)

    async def follow(self, consumer: AIOKafkaConsumer, codec: Codec) -> None:
        """Fold the agent events topic forever (no group: every worker reads all of it)."""
        consumer.subscribe([AGENT_EVENTS.name])
        async for message in consumer:
            if message.value is None:
                continue
            try:
                event = codec.decode(message.value)
            except DecodeError as err:
                log.warning("agent event %s@%d undecodable: %s", message.topic, message.offset, err)
                continue
            await self.learn(event)

    async def learn(self, event: object) -> None:
        """Apply an agent event and wake the sessions waiting for a version it publishes."""
        async with self._changed:
            self.apply(event)
            self._changed.notify_all()
