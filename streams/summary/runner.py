"""The summary worker: finished calls in, ``CallSummarized`` out, offsets committed behind them.

A consumer group of its own on ``voice.calls.events.v1``; the agents' outcome labels come from
``voice.agents.events.v1``. Each summary is a task (bounded), so a slow model never holds up
the reading of call events; an offset is committed only once every summary caused by it (and
before it) is recorded or given up, so a crash summarises again (the event id is derived from
the call, so the projection keeps one).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from google.genai import types

from infra.kafka import make_consumer, make_producer
from infra.settings import Settings
from schemas.agents import AgentVersionPublished
from schemas.catalog import AGENT_EVENTS, CALL_EVENTS, POSTCALL_EVENTS
from schemas.codec import Codec, DecodeError
from schemas.dialer import CallSummarized
from schemas.envelope import derive_event_id
from schemas.ids import AgentId
from streams.summary.prompt import Verdict, build_prompt, read_reply
from streams.summary.tracker import CallTracker, SummaryJob

log = logging.getLogger(__name__)

Generate = Callable[[str], Awaitable[str]]
"""Send one prompt to the model and return its text."""


def genai_generate(client: Any, model: str) -> Generate:
    """``models.generate_content`` of a google-genai client, asking for JSON."""
    config = types.GenerateContentConfig(response_mime_type="application/json", temperature=0.0)

    async def generate(prompt: str) -> str:
        response = await client.aio.models.generate_content(model=model, contents=prompt, config=config)
        return str(response.text or "")

    return generate


class SummaryWorker:
    def __init__(
        self,
        settings: Settings,
        generate: Generate,
        *,
        model: str,
        group_id: str = "voice-summary",
        max_in_flight: int = 8,
        attempts: int = 3,
    ) -> None:
        self._settings = settings
        self._generate = generate
        self._model = model
        self._group = group_id
        self._codec = Codec.single_object()
        self._gate = asyncio.Semaphore(max_in_flight)
        self._attempts = attempts
        self.tracker = CallTracker()
        self.labels: dict[AgentId, tuple[str, ...]] = {}
        self._pending: dict[TopicPartition, set[int]] = defaultdict(set)
        self._done: dict[TopicPartition, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        producer = make_producer(self._settings.kafka)
        calls = make_consumer(self._settings.kafka, CALL_EVENTS.name, group_id=self._group)
        agents = make_consumer(self._settings.kafka, AGENT_EVENTS.name, group_id=None)
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
                        self._on_call_event(tp, message.offset, message.value, producer)
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
        """The labels of every agent published so far, before the first call is looked at."""
        topic = AGENT_EVENTS.name
        partitions = [TopicPartition(topic, p) for p in agents.partitions_for_topic(topic) or ()]
        ends = await agents.end_offsets(partitions)
        while [tp for tp in partitions if await agents.position(tp) < ends[tp]]:
            await self._read_agents(agents, 200)

    async def _follow_agents(self, agents: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._read_agents(agents, 500)

    async def _read_agents(self, agents: Any, timeout_ms: int) -> None:
        for messages in (await agents.getmany(timeout_ms=timeout_ms)).values():
            for message in messages:
                try:
                    record = self._codec.decode(message.value) if message.value else None
                except DecodeError:
                    continue
                if isinstance(record, AgentVersionPublished):
                    self.labels[record.agent_id] = record.config.outcome_labels

    def _on_call_event(
        self, tp: TopicPartition, offset: int, value: bytes | None, producer: AIOKafkaProducer
    ) -> None:
        self._done[tp] = offset + 1
        try:
            event = self._codec.decode(value) if value else None
        except DecodeError:
            return  # the calls worker dead-letters it
        job = self.tracker.observe(event)
        if job is None:
            return
        self._pending[tp].add(offset)
        task = asyncio.create_task(self._summarise(tp, offset, job, producer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _summarise(
        self, tp: TopicPartition, offset: int, job: SummaryJob, producer: AIOKafkaProducer
    ) -> None:
        try:
            labels = self.labels.get(job.agent_id, ())
            verdict = await self._ask(build_prompt(job.turns, labels), labels)
            if verdict is not None:
                record = summarized(job, verdict, self._model, datetime.now(UTC))
                await producer.send_and_wait(
                    POSTCALL_EVENTS.name, self._codec.encode(record), job.call_id.encode()
                )
        except Exception:
            log.exception("summarising call %s failed", job.call_id)
        finally:
            self._pending[tp].discard(offset)

    async def _ask(self, prompt: str, labels: tuple[str, ...]) -> Verdict | None:
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._gate:
                    return read_reply(await self._generate(prompt), labels)
            except Exception as err:  # the model's errors are many; all of them are worth a retry
                log.warning("summary attempt %d failed: %s", attempt, err)
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        return None

    async def _commit(self, consumer: Any) -> None:
        offsets = {}
        for tp, done in self._done.items():
            pending = self._pending.get(tp)
            offsets[tp] = OffsetAndMetadata(min(pending) if pending else done, "")
        if offsets:
            await consumer.commit(offsets)


def summarized(job: SummaryJob, verdict: Verdict, model: str, now: datetime) -> CallSummarized:
    return CallSummarized(
        tenant_id=job.tenant_id,
        call_id=job.call_id,
        seq=1,
        event_id=derive_event_id(job.call_id, 1, "postcall.summary"),
        occurred_at=now,
        correlation_id=job.correlation_id,
        agent_id=job.agent_id,
        summary=verdict.summary,
        outcome_label=verdict.outcome_label,
        model=model,
    )
