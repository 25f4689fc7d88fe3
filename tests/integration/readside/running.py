"""Run a projection runner in the background for the length of a block."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.deadletter import DeadLetterPublisher
from infra.settings import KafkaSettings
from projections.runner import Projection, ProjectionRunner
from schemas.codec import Codec
from schemas.registry import Record
from tests.integration.readside.call_stream import unique


def make_runner(
    projection: Projection,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    codec: Codec,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> ProjectionRunner:
    dead_letters = DeadLetterPublisher(producer, codec, f"projection.{projection.name}")
    return ProjectionRunner(
        projection,
        session_factory=sessions,
        dead_letters=dead_letters,
        codec=codec,
        before_commit=before_commit,
    )


@contextlib.asynccontextmanager
async def running(runner: ProjectionRunner, kafka: KafkaSettings) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(kafka, stop=stop, group_id=unique("rs-group")))
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)


class OneByOne:
    """A projection with its batch path hidden, so the runner applies record by record (the reference)."""

    def __init__(self, inner: Projection) -> None:
        self._inner = inner
        self.name = inner.name
        self.topics = inner.topics

    def aggregate_of(self, record: Record) -> tuple[str, int]:
        return self._inner.aggregate_of(record)

    async def apply(self, session: AsyncSession, record: Record) -> None:
        await self._inner.apply(session, record)

    async def flush(self, session: AsyncSession) -> None:
        await self._inner.flush(session)
