"""Runs a post-call handler: call events in, one task per job, offsets committed behind the jobs.

A consumer group of its own on ``voice.calls.events.v1`` (never the calls worker's) and the
agents' published versions from ``voice.agents.events.v1`` (every one so far is read before the
first call event). Each job is a task, so a slow one never holds up the reading of call events;
an offset is committed only once every job caused by it (and before it) has finished, so a crash
runs the jobs again: at least once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from infra.eventlog.reading import probed_end_offsets
from infra.kafka import make_consumer, make_producer, send_until_acknowledged
from infra.settings import Settings
from schemas.agents import AgentVersionPublished
from schemas.catalog import AGENT_EVENTS, CALL_EVENTS, POSTCALL_EVENTS
from schemas.codec import Codec, DecodeError
from schemas.dialer import PostCallEvent

log = logging.getLogger(__name__)

Publish = Callable[[PostCallEvent], Awaitable[None]]
"""Write one post-call event, keyed by its call."""


@dataclass(frozen=True, slots=True)
class Job:
    """Work one call event causes; ``name`` says what failed in the log."""

    name: str
    run: Callable[[Publish], Awaitable[None]]


@dataclass(slots=True)
class OffsetBook:
    """Per partition: the offset after the last event read, and the offsets with jobs unfinished."""

    _read: dict[TopicPartition, int] = field(default_factory=dict)
    _running: dict[TopicPartition, Counter[int]] = field(default_factory=dict)

    def read(self, tp: TopicPartition, offset: int) -> None:
        self._read[tp] = offset + 1

    def started(self, tp: TopicPartition, offset: int) -> None:
        self._running.setdefault(tp, Counter())[offset] += 1

    def finished(self, tp: TopicPartition, offset: int) -> None:
        running = self._running[tp]
        running[offset] -= 1
        if running[offset] <= 0:
            del running[offset]

    def reset(self, tp: TopicPartition) -> None:
        """Forget where a partition was read: it was revoked, or assigned to resume elsewhere.

        A partition that comes back resumes at the group's commit, perhaps another worker's
        (further on): the position read before would commit it back. Jobs still running keep
        their holds; they have not finished, whoever owns the partition now.
        """
        self._read.pop(tp, None)

    def committable(self) -> dict[TopicPartition, int]:
        """Where each partition may resume: its oldest unfinished job, else after the last read."""
        return {tp: min(self._running.get(tp) or (done,)) for tp, done in self._read.items()}


class CallEventsRunner:
    """Feeds ``on_agent`` every published agent version and runs the jobs ``on_call`` returns."""

    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str,
        on_agent: Callable[[AgentVersionPublished], None],
        on_call: Callable[[object], Sequence[Job]],
        fetch_max_wait_ms: int,
    ) -> None:
        self._settings = settings
        self._fetch_wait = fetch_max_wait_ms
        self._group = group_id
        self._on_agent = on_agent
        self._on_call = on_call
        self._codec = Codec.single_object()
        self._book = OffsetBook()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        producer = make_producer(self._settings.kafka)
        kafka, wait = self._settings.kafka, self._fetch_wait
        calls = make_consumer(kafka, group_id=self._group, fetch_max_wait_ms=wait)
        calls.subscribe([CALL_EVENTS.name], listener=_ResetOnRebalance(self._book))
        agents = make_consumer(kafka, AGENT_EVENTS.name, group_id=None, fetch_max_wait_ms=wait)
        await producer.start()
        await agents.start()
        await calls.start()
        follow: asyncio.Task[None] | None = None
        try:
            await self._catch_up(agents)
            follow = asyncio.create_task(self._follow_agents(agents, stop))
            while not stop.is_set():
                for tp, messages in (await calls.getmany(timeout_ms=200)).items():
                    for message in messages:
                        self._read_call_event(tp, message.offset, message.value, producer)
                await self._commit(calls)
        finally:
            if follow is not None:
                follow.cancel()
                await asyncio.gather(follow, return_exceptions=True)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await calls.stop()
            await agents.stop()
            await producer.stop()

    async def _catch_up(self, agents: Any) -> None:
        topic = AGENT_EVENTS.name
        partitions = [TopicPartition(topic, p) for p in agents.partitions_for_topic(topic) or ()]
        # The true ends (Tansu's ListOffsets under-reports them), on a consumer of its own.
        ends = await probed_end_offsets(make_consumer(self._settings.kafka, group_id=None), partitions)
        while [tp for tp in partitions if await agents.position(tp) < ends[tp]]:
            await self._read_agents(agents, 200)

    async def _follow_agents(self, agents: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._read_agents(agents, 500)
            except Exception:  # a dead follower would freeze the agents' settings unnoticed
                log.exception("reading the agent events failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def _read_agents(self, agents: Any, timeout_ms: int) -> None:
        for messages in (await agents.getmany(timeout_ms=timeout_ms)).values():
            for message in messages:
                record = self._decode(message.value)
                if isinstance(record, AgentVersionPublished):
                    self._on_agent(record)

    def _read_call_event(
        self, tp: TopicPartition, offset: int, value: bytes | None, producer: AIOKafkaProducer
    ) -> None:
        self._book.read(tp, offset)
        for job in self._on_call(self._decode(value)):  # undecodable ones the calls worker dead-letters
            self._book.started(tp, offset)
            task = asyncio.create_task(self._run(tp, offset, job, producer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, tp: TopicPartition, offset: int, job: Job, producer: AIOKafkaProducer) -> None:
        async def publish(record: PostCallEvent) -> None:
            await _send_until_taken(producer, self._codec.encode(record), record)

        try:
            await job.run(publish)
        except Exception:
            log.exception("%s failed", job.name)
        # Not on cancellation (shutdown): an unfinished job keeps its offset uncommitted.
        self._book.finished(tp, offset)

    async def _commit(self, consumer: Any) -> None:
        assigned = consumer.assignment()  # a revoked partition's offset is no longer ours to commit
        offsets = {
            tp: OffsetAndMetadata(at, "") for tp, at in self._book.committable().items() if tp in assigned
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as err:  # a rebalance or a broker away: the next commit carries them
            log.warning("could not commit call-event offsets (%s); will retry", err)

    def _decode(self, value: bytes | None) -> object:
        try:
            return self._codec.decode(value) if value else None
        except DecodeError:
            return None


class _ResetOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, book: OffsetBook) -> None:
        self._book = book

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._book.reset(tp)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            self._book.reset(tp)


PUBLISH_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


async def _send_until_taken(producer: AIOKafkaProducer, value: bytes, record: PostCallEvent) -> None:
    """Write a post-call event, waiting out a broker that is away: a summary or a delivery
    record is never given up (its model call or HTTP request has already happened); an error
    that blames the record (too large...) fails the job, and says so."""
    await send_until_acknowledged(
        lambda: producer.send_and_wait(POSTCALL_EVENTS.name, value, record.call_id.encode()),
        PUBLISH_BACKOFF_S,
        f"{type(record).__name__} for call {record.call_id}",
    )
