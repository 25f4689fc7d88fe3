"""Runs a post-call handler: call events in, one task per job, offsets committed behind the jobs.

A consumer group of its own on ``voice.calls.events.v1`` (never the calls worker's) and the
agents' published versions from ``voice.agents.events.v1`` (every one so far is read before the
first call event). Each job is a task, so a slow one never holds up the reading of call events;
an offset is committed only once every job caused by it (and before it) has finished, so a crash
runs the jobs again: at least once. Nor is a commit made past the first event of a call not yet
ended: the workers keep a live call in memory only, so a restart must read its start again
before its end. Each commit is preceded by a note of how far its partition had been read, the
committed offset of a second group (``<group>.read``; the embedded broker keeps no commit
metadata): the ends re-read after a restart, of calls that had ended (and their jobs finished)
before the commit, are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from infra.eventlog.reading import probed_end_offsets
from infra.kafka import (
    make_consumer,
    make_producer,
    send_until_acknowledged,
    start_consumer,
    start_producer,
    stop_consumer,
)
from infra.settings import Settings
from schemas.agents import AgentVersionPublished
from schemas.catalog import AGENT_EVENTS, CALL_EVENTS, POSTCALL_EVENTS
from schemas.codec import Codec, DecodeError
from schemas.dialer import PostCallEvent
from schemas.ids import CallId
from streams.post_call_offsets import FORGET_SLACK, OffsetBook

log = logging.getLogger(__name__)

Publish = Callable[[PostCallEvent], Awaitable[None]]
"""Write one post-call event, keyed by its call."""


@dataclass(frozen=True, slots=True)
class Job:
    """Work one call event causes; ``name`` says what failed in the log."""

    name: str
    run: Callable[[Publish], Awaitable[None]]


class CallEventsRunner:
    """Feeds ``on_agent`` every published agent version and runs the jobs ``on_call`` returns.

    ``on_forget`` is told of each call it lets go without an end (open past its limit, or in a
    partition taken away): the worker drops what it keeps of it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str,
        on_agent: Callable[[AgentVersionPublished], None],
        on_call: Callable[[object], Sequence[Job]],
        on_forget: Callable[[CallId], None],
        fetch_max_wait_ms: int,
    ) -> None:
        self._settings = settings
        self._fetch_wait = fetch_max_wait_ms
        self._group = group_id
        self._on_agent = on_agent
        self._on_call = on_call
        self._on_forget = on_forget
        self._codec = Codec.single_object()
        self._book = OffsetBook()
        self._noted: dict[TopicPartition, int] = {}  # the notes last committed
        self._resumed: set[TopicPartition] = set()  # the partitions whose note has been read
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        producer = make_producer(self._settings.kafka)
        kafka, wait = self._settings.kafka, self._fetch_wait
        calls = make_consumer(kafka, group_id=self._group, fetch_max_wait_ms=wait)
        notes = make_consumer(kafka, group_id=f"{self._group}.read", fetch_max_wait_ms=wait)
        calls.subscribe([CALL_EVENTS.name], listener=_ResetOnRebalance(self))
        agents = make_consumer(kafka, AGENT_EVENTS.name, group_id=None, fetch_max_wait_ms=wait)
        async with contextlib.AsyncExitStack() as clients:  # stopped in reverse, started or not
            await start_producer(producer)
            clients.push_async_callback(producer.stop)
            # notes only commits: assigned what calls is, paused, never read
            for consumer in (agents, notes, calls):
                await start_consumer(consumer)
                clients.push_async_callback(stop_consumer, consumer)
            await self._serve(producer, agents, notes, calls, stop)

    async def _serve(
        self,
        producer: AIOKafkaProducer,
        agents: AIOKafkaConsumer,
        notes: AIOKafkaConsumer,
        calls: AIOKafkaConsumer,
        stop: asyncio.Event,
    ) -> None:
        """Catch up on the agents, then read call events until ``stop``; the clients are started."""
        follow: asyncio.Task[None] | None = None
        try:
            await self._catch_up(agents)
            follow = asyncio.create_task(self._follow_agents(agents, stop))
            while not stop.is_set():
                for tp, messages in (await calls.getmany(timeout_ms=200)).items():
                    if not await self._resume(notes, tp, stop):
                        break  # stopped
                    for message in messages:
                        self._read_call_event(tp, message.offset, message.value, producer)
                await self._commit(calls, notes)
        finally:
            if follow is not None:
                follow.cancel()
                await asyncio.gather(follow, return_exceptions=True)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

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
        event = self._decode(value)  # undecodable ones the calls worker dead-letters
        self._book.read(tp, offset)
        held = self._book.follow(tp, offset, event)
        if held is None:
            log.debug("%s at %s:%d was handled before the last commit", type(event).__name__, tp, offset)
            return
        for job in self._on_call(event):
            self._book.started(tp, held)
            task = asyncio.create_task(self._run(tp, held, job, producer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for call_id in self._book.overdue(tp):
            log.warning(
                "call %s is still open past its maximum duration plus %s: forgotten (its end, if it"
                " ever comes, finds no start: no summary or call.ended webhook)",
                call_id,
                FORGET_SLACK,
            )
            self._on_forget(call_id)

    def _revoked(self, partitions: set[TopicPartition]) -> None:
        self._assigned(partitions)
        for tp in partitions:
            self._forget(self._book.reset(tp))

    def _assigned(self, partitions: set[TopicPartition]) -> None:
        # Nothing read is dropped here: a batch may be handed out before this runs (revoking,
        # which aiokafka always does first, drops what was read).
        for tp in partitions:
            self._noted.pop(tp, None)
            self._resumed.discard(tp)

    async def _resume(self, notes: Any, tp: TopicPartition, stop: asyncio.Event) -> bool:
        """Before a partition's first batch: how far it had been read at the commit it resumes from."""
        attempt = 0
        while tp not in self._resumed and not stop.is_set():
            try:
                self._book.resumed(tp, await notes.committed(tp))
                self._resumed.add(tp)
            except KafkaError as err:  # the broker away: waited out (ADR 12)
                delay = PUBLISH_BACKOFF_S[min(attempt, len(PUBLISH_BACKOFF_S) - 1)]
                attempt += 1
                log.warning("could not read how far %s had been read (%s); retrying in %g s", tp, err, delay)
                await asyncio.sleep(delay)
        return tp in self._resumed

    def _forget(self, calls: list[CallId]) -> None:
        # Their partition is read again from its commit, before their start, here or elsewhere.
        for call_id in calls:
            self._on_forget(call_id)

    async def _run(self, tp: TopicPartition, offset: int, job: Job, producer: AIOKafkaProducer) -> None:
        async def publish(record: PostCallEvent) -> None:
            await _send_until_taken(producer, self._codec.encode(record), record)

        try:
            await job.run(publish)
        except Exception:
            log.exception("%s failed", job.name)
        # Not on cancellation (shutdown): an unfinished job keeps its offset uncommitted.
        self._book.finished(tp, offset)

    async def _commit(self, consumer: Any, notes: Any) -> None:
        assigned = consumer.assignment()  # a revoked partition's offset is no longer ours to commit
        offsets = {
            tp: OffsetAndMetadata(at, "") for tp, at in self._book.committable().items() if tp in assigned
        }
        if not offsets:
            return
        handled = {tp: self._book.handled(tp) for tp in offsets}
        new = {tp: OffsetAndMetadata(at, "") for tp, at in handled.items() if self._noted.get(tp) != at}
        if set(notes.assignment()) != set(assigned):
            notes.assign(list(assigned))
            notes.pause(*assigned)
        try:
            if new:  # first: a note may run ahead of its commit (harmless), never behind it
                await notes.commit(new)
                self._noted.update(handled)
            await consumer.commit(offsets)
        except KafkaError as err:  # a rebalance or a broker away: the next commit carries them
            log.warning("could not commit call-event offsets (%s); will retry", err)

    def _decode(self, value: bytes | None) -> object:
        try:
            return self._codec.decode(value) if value else None
        except DecodeError:
            return None


class _ResetOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: CallEventsRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._runner._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._runner._assigned(assigned)


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
