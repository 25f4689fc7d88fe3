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
