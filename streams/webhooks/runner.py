"""The webhook worker: call events in, signed deliveries out, offsets committed behind them.

A consumer group of its own on ``voice.calls.events.v1`` (never the calls worker's), the
agents' webhook URLs from ``voice.agents.events.v1``, and one task per delivery. An offset is
committed only once every delivery caused by it (and before it) has succeeded or given up,
so a crash re-delivers: at least once, and receivers de-duplicate by ``X-Voice-Delivery``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from infra.kafka import make_consumer, make_producer
from infra.settings import Settings
from schemas.agents import AgentVersionPublished
from schemas.calls import CallEnded, CallFailed, CallReceived
from schemas.catalog import AGENT_EVENTS, CALL_EVENTS, POSTCALL_EVENTS
from schemas.codec import Codec, DecodeError
from schemas.dialer import WebhookDeliveryAttempted
from schemas.ids import AgentId, CallId
from streams.dialer.policy import RetryPolicy
from streams.webhooks.delivery import Webhook, deliver

log = logging.getLogger(__name__)


class HookPlanner:
    """Which webhooks a call event causes, from the agents' URLs and the calls seen so far."""

    def __init__(self) -> None:
        self.urls: dict[AgentId, tuple[str, ...]] = {}
        self._calls: dict[CallId, CallReceived] = {}

    def observe_agent(self, fact: AgentVersionPublished) -> None:
        self.urls[fact.agent_id] = fact.config.webhook_urls

    def plan(self, event: object) -> list[Webhook]:
        if isinstance(event, CallReceived):
            self._calls[event.call_id] = event
            return self._hooks(event, "call.started", {})
        if isinstance(event, CallEnded | CallFailed):
            received = self._calls.pop(event.call_id, None)
            if received is None:
                return []
            outcome = {"reason": event.reason, "ended_at": event.occurred_at.isoformat()}
            if isinstance(event, CallFailed):
                outcome["failed"] = "true"
            return self._hooks(received, "call.ended", outcome)
        return []

    def _hooks(self, call: CallReceived, event_type: str, extra: dict[str, Any]) -> list[Webhook]:
        payload = {
            "call_id": call.call_id,
            "tenant_id": call.tenant_id,
            "agent_id": call.agent_id,
            "direction": call.direction,
            "from": call.from_number,
            "to": call.to_number,
            "transcript_url": f"/api/calls/{call.call_id}/transcript",
            **extra,
        }
        return [
            Webhook(
                tenant_id=call.tenant_id,
                agent_id=call.agent_id,
                call_id=call.call_id,
                url=url,
                event_type=event_type,
                payload=payload,
            )
            for url in self.urls.get(call.agent_id, ())
        ]


class WebhookWorker:
    def __init__(
        self, settings: Settings, secret: str, policy: RetryPolicy, group_id: str = "voice-webhooks"
    ) -> None:
        self._settings = settings
        self._secret = secret
        self._policy = policy
        self._group = group_id
        self._codec = Codec.single_object()
        self.planner = HookPlanner()
        self._pending: dict[TopicPartition, set[int]] = defaultdict(set)
        self._done: dict[TopicPartition, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        producer = make_producer(self._settings.kafka)
        calls = make_consumer(self._settings.kafka, CALL_EVENTS.name, group_id=self._group)
        agents = make_consumer(self._settings.kafka, AGENT_EVENTS.name, group_id=None)
        async with httpx.AsyncClient() as client:
            await producer.start()
            await agents.start()
            await calls.start()
            try:
                await self._catch_up(agents)
                follow = asyncio.create_task(self._follow_agents(agents, stop))
                while not stop.is_set():
                    batches = await calls.getmany(timeout_ms=200)
                    for tp, messages in batches.items():
                        for message in messages:
                            self._on_call_event(tp, message.offset, message.value, client, producer)
                    await self._commit(calls)
                follow.cancel()
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await calls.stop()
                await agents.stop()
                await producer.stop()

    async def _catch_up(self, agents: Any) -> None:
        partitions = [
            TopicPartition(AGENT_EVENTS.name, p) for p in agents.partitions_for_topic(AGENT_EVENTS.name) or ()
        ]
        ends = await agents.end_offsets(partitions)
        while [tp for tp in partitions if await agents.position(tp) < ends[tp]]:
            for messages in (await agents.getmany(timeout_ms=200)).values():
                for message in messages:
                    self._on_agent_event(message.value)

    async def _follow_agents(self, agents: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for messages in (await agents.getmany(timeout_ms=500)).values():
                for message in messages:
                    self._on_agent_event(message.value)

    def _on_agent_event(self, value: bytes | None) -> None:
        try:
            record = self._codec.decode(value) if value else None
        except DecodeError:
            return
        if isinstance(record, AgentVersionPublished):
            self.planner.observe_agent(record)

    def _on_call_event(
        self,
        tp: TopicPartition,
        offset: int,
        value: bytes | None,
        client: httpx.AsyncClient,
        producer: AIOKafkaProducer,
    ) -> None:
        self._done[tp] = offset + 1
        try:
            event = self._codec.decode(value) if value else None
        except DecodeError:
            return  # the calls worker dead-letters it
        for hook in self.planner.plan(event):
            self._pending[tp].add(offset)
            task = asyncio.create_task(self._deliver(tp, offset, hook, client, producer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self,
        tp: TopicPartition,
        offset: int,
        hook: Webhook,
        client: httpx.AsyncClient,
        producer: AIOKafkaProducer,
    ) -> None:
        async def record(attempt: WebhookDeliveryAttempted) -> None:
            await producer.send_and_wait(
                POSTCALL_EVENTS.name, self._codec.encode(attempt), attempt.call_id.encode()
            )

        try:
            await deliver(hook, client, self._secret, self._policy, record)
        except Exception:
            log.exception("webhook %s to %s failed", hook.event_type, hook.url)
        finally:
            self._pending[tp].discard(offset)

    async def _commit(self, consumer: Any) -> None:
        offsets = {}
        for tp, done in self._done.items():
            pending = self._pending.get(tp)
            offsets[tp] = OffsetAndMetadata(min(pending) if pending else done, "")
        if offsets:
            await consumer.commit(offsets)
