"""Non-blocking fact publishing: the media path enqueues and moves on; a task talks to Kafka."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiokafka import AIOKafkaProducer

from edge.metrics import EdgeMetrics
from schemas.catalog import CALL_INPUTS
from schemas.codec import Codec, key_bytes
from schemas.registry import Record

log = logging.getLogger(__name__)


class FactPublisher(Protocol):
    """Where the edge's call facts go."""

    def publish(self, record: Record) -> bool:
        """Enqueue a fact without waiting; False when it was dropped (queue full)."""
        ...


class KafkaFactPublisher:
    """A bounded queue drained by one task into an aiokafka producer (acks are not awaited inline)."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        codec: Codec,
        metrics: EdgeMetrics,
        *,
        topic: str = CALL_INPUTS.name,
        max_queue: int = 10_000,
    ) -> None:
        self._producer = producer
        self._codec = codec
        self._metrics = metrics
        self._topic = topic
        self._queue: asyncio.Queue[Record | None] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[object]] = set()

    def publish(self, record: Record) -> bool:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._metrics.incr("facts.dropped")
            log.error(
                "fact queue full, dropped %s for call %s",
                type(record).__name__,
                getattr(record, "call_id", "-"),
            )
            return False
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="edge-fact-publisher")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, wait for the acks (bounded), then stop the task."""
        if self._task is None:
            return
        await self._queue.put(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.error("fact publisher did not drain within %.1fs; %d left", timeout_s, self._queue.qsize())
            self._task.cancel()
        self._task = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        while True:
            record = await self._queue.get()
            if record is None:
                break
            await self._send(record)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _send(self, record: Record) -> None:
        try:
            value = self._codec.encode(record)
            future = await self._producer.send(
                self._topic, value=value, key=key_bytes(CALL_INPUTS.key_of(record))
            )
        except Exception:  # one bad record or a broker hiccup must not stop publishing
            self._metrics.incr("facts.failed")
            log.exception("could not publish %s", type(record).__name__)
            return
        self._metrics.incr("facts.sent")
        self._pending.add(future)
        future.add_done_callback(self._acked)

    def _acked(self, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        if future.cancelled() or future.exception() is not None:
            self._metrics.incr("facts.failed")
            log.error("fact not acknowledged: %s", None if future.cancelled() else future.exception())


class RecordingPublisher:
    """A fake publisher that keeps every fact in a list."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def publish(self, record: Record) -> bool:
        self.records.append(record)
        return True
