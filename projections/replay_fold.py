"""Folding planned partitions of the log into a rebuild schema: one consumer, one runner per projection.

Both a single-process replay and each child of a parallel one (``projections.replay_jobs``) fold
through here, so the rows, positions and checkpoints they write are the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.deadletter import ConsumedRecord, DeadLetterPublisher, RecordDecodeError
from projections.runner import Projection, ProjectionRunner
from projections.service import ServiceOptions, build_projections
from projections.verification import Undecodable
from schemas.codec import Codec
from schemas.deadletter import DeadLetter

Offsets = dict[TopicPartition, int]
Plan = tuple[Projection, Offsets, Offsets]
"""A projection, where each of its partitions starts, and where it ends (exclusive)."""


@dataclass
class ReplayProgress:
    """What one replay run did."""

    planned: int = 0
    applied: int = 0
    consumed: int = 0
    skipped: int = 0
    refused: int = 0
    origin: dict[TopicPartition, int] = field(default_factory=dict)
    """Where the replay started on each partition (beginning, or the --since offsets)."""
    reached: dict[TopicPartition, int] = field(default_factory=dict)
    undecodable: Undecodable = field(default_factory=Undecodable)
    """Of the records this run read, those that did not decode (also among ``refused``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayRequest:
    """One replay into ``schema``: which projections, from when, over which topics (tests override)."""

    schema: str
    projections: tuple[str, ...]
    since: datetime | None = None
    topics: Mapping[str, str] = field(default_factory=dict)
    max_records: int = 2000
    stop_after: int | None = None
    """Stop (between transactions) once this many records were consumed: an interruption on purpose."""
    jobs: int = 1
    """Processes folding partitions side by side; 1 folds in this process."""


def projections_for(request: ReplayRequest) -> list[Projection]:
    built = []
    for name in request.projections:
        topic = request.topics.get(name)
        built += build_projections(ServiceOptions(only=(name,), topic=topic))
    return built


class _NoSend:
    """Dead letters of a replay are counted and reported, not published again (the live run did)."""

    def __init__(self) -> None:
        self.count = 0

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> object:
        self.count += 1
        return None


class _Tally(DeadLetterPublisher):
    """Notes where the records that do not decode are, so the swap can refuse to go ahead."""

    def __init__(self, sender: _NoSend, group: str, undecodable: Undecodable) -> None:
        super().__init__(sender, Codec.single_object(), group)
        self._undecodable = undecodable

    async def publish(self, message: ConsumedRecord, reason: str, error: BaseException) -> DeadLetter:
        if isinstance(error, RecordDecodeError):
            self._undecodable.add(error)
        return await super().publish(message, reason, error)


async def fold_plans(
    consumer: AIOKafkaConsumer,
    sessions: async_sessionmaker[AsyncSession],
    plans: Sequence[Plan],
    request: ReplayRequest,
    progress: ReplayProgress,
    on_advance: Callable[[int], None],
    stop: asyncio.Event,
) -> None:
    """Fold each plan in turn, as the live service would, adding what was done to ``progress``."""
    dead = _NoSend()
    for projection, starts, ends in plans:
        if stop.is_set():
            break
        runner = ProjectionRunner(
            projection,
            session_factory=sessions,
            dead_letters=_Tally(dead, f"replay.{projection.name}", progress.undecodable),
            codec=Codec.single_object(),
        )
        await _fold(consumer, runner, starts, ends, request, progress, on_advance, stop)
        progress.applied += runner.applied
        progress.skipped += runner.skipped
    progress.refused += dead.count


async def _fold(
    consumer: AIOKafkaConsumer,
    runner: ProjectionRunner,
    starts: Offsets,
    ends: Offsets,
    request: ReplayRequest,
    progress: ReplayProgress,
    on_advance: Callable[[int], None],
    stop: asyncio.Event,
) -> None:
    todo = {tp: end for tp, end in ends.items() if starts[tp] < end}
    progress.reached.update({tp: starts[tp] for tp in ends})
    if not todo:
        return
    consumer.assign(list(todo))
    for tp in todo:
        consumer.seek(tp, starts[tp])
    while todo and not stop.is_set():
        batches = await consumer.getmany(*todo, timeout_ms=500, max_records=request.max_records)
        messages = [m for tp, ms in batches.items() for m in ms if m.offset < todo.get(tp, -1)]
        if messages:
            await runner.process(messages)
            progress.consumed += len(messages)
            on_advance(len(messages))
            for m in messages:
                progress.reached[TopicPartition(m.topic, m.partition)] = m.offset + 1
        for tp in list(todo):
            if await consumer.position(tp) >= todo[tp]:
                del todo[tp]
        if request.stop_after is not None and progress.consumed >= request.stop_after:
            stop.set()
