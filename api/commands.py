"""Writes commands to Kafka and waits (bounded) for the read model to show their effect."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from projections import queries
from schemas.catalog import topics_for
from schemas.codec import Codec
from schemas.registry import Record

T = TypeVar("T")


class Sender(Protocol):
    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> object: ...


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def now() -> datetime:
    return datetime.now(UTC)


class CommandBus:
    """The API's only way to change anything outside its own tables."""

    def __init__(
        self,
        producer: Sender,
        codec: Codec,
        sessions: async_sessionmaker[AsyncSession],
        wait_s: float,
        poll_s: float = 0.05,
    ) -> None:
        self._producer = producer
        self._codec = codec
        self._sessions = sessions
        self.wait_s = wait_s
        self._poll_s = poll_s

    def encode(self, record: Record) -> bytes:
        """The record as it would be written; raises EncodeError for a value its schema cannot carry."""
        return self._codec.encode(record)

    async def send(self, record: Record, topic: str | None = None) -> None:
        """Write ``record`` to its (only) catalog topic, keyed as the catalog says."""
        spec = topics_for(type(record))[0]
        key = spec.key_of(record)
        key_bytes = key.encode() if isinstance(key, str) else key
        await self._producer.send_and_wait(topic or spec.name, self.encode(record), key_bytes)

    async def wait_for(self, check: Callable[[AsyncSession], Awaitable[T | None]]) -> T | None:
        """The first non-None result of ``check`` within the write wait, else None."""
        deadline = time.monotonic() + self.wait_s
        while True:
            async with self._sessions() as session:
                found = await check(session)
            if found is not None or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(self._poll_s)

    async def outcome(self, correlation_id: str) -> dict[str, Any] | None:
        """The command's applied/rejected row, or None if the writer has not answered in time."""

        async def check(session: AsyncSession) -> dict[str, Any] | None:
            return await queries.command_result(session, correlation_id)

        return await self.wait_for(check)
