"""Non-blocking fact publishing: the media path enqueues and moves on; a task talks to Kafka."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from aiokafka import AIOKafkaProducer

from edge.metrics import EdgeMetrics
from infra.backoff import wait_before
from infra.kafka import is_transient
from schemas.catalog import CALL_INPUTS
from schemas.codec import Codec, key_bytes
from schemas.registry import Record

log = logging.getLogger(__name__)


class FactPublisher(Protocol):
    """Where the edge's call facts go."""

    def publish(self, record: Record) -> bool:
        """Enqueue a fact without waiting; False when it was dropped (queue full)."""
        ...

    @property
    def healthy(self) -> bool:
        """False while facts have been waiting too long for the event log (broker away)."""
        ...


WINDOW = 500
"""Facts sent together before their acks are awaited (only those not taken are sent again)."""
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0)
"""Waits between re-sends of a window the broker did not take; the last one repeats."""


class KafkaFactPublisher:
    """A bounded queue drained by one task into an aiokafka producer, retrying until acked.

    The media path only enqueues. The task sends what is queued as one window, awaits the acks,
    and re-sends the facts the broker did not take, in their order, with a growing back-off,
    for as long as the broker is away: a fact is lost only when the queue overflows (counted as
    ``facts.dropped``) or at shutdown (``facts.lost_at_shutdown``), each with an error logged.
    Around an outage a re-sent fact can land after a later fact of its call that went through
    first, and a fact whose ack was lost lands twice with the same ``event_id``; the calls worker
    applies such a copy once (``streams.calls.repeats``).
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        codec: Codec,
        metrics: EdgeMetrics,
        *,
        topic: str = CALL_INPUTS.name,
        max_queue: int = 10_000,
        stall_after_s: float = 3.0,
        backoff_s: tuple[float, ...] = BACKOFF_S,
    ) -> None:
        self._producer = producer
        self._codec = codec
        self._metrics = metrics
        self._topic = topic
        self._queue: asyncio.Queue[Record | None] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._stall_after_s = stall_after_s
        self._backoff_s = backoff_s
        self._window_since: float | None = None
        self._closing = False
        self._waiting = 0
        """Facts accepted by publish() and not yet acked by the broker (or given up as unencodable)."""

    def publish(self, record: Record) -> bool:
        if self._closing:
            self._lose("facts.lost_at_shutdown", "published after the publisher closed", record)
            return False
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._lose("facts.dropped", "queue full (the event log has been away for a while)", record)
            return False
        self._waiting += 1
        return True

    def _lose(self, counter: str, why: str, record: object) -> None:
        """Count and log a fact that will never reach the log."""
        self._metrics.incr(counter)
        log.error("fact %s for call %s lost: %s", type(record).__name__, getattr(record, "call_id", "-"), why)

    @property
    def healthy(self) -> bool:
        since = self._window_since
        return since is None or time.monotonic() - since < self._stall_after_s

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="edge-fact-publisher")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, wait for the acks (bounded), then stop the task."""
        if self._task is None:
            return
        self._closing = True
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.put(None)  # waits for room: the queue may be full in an outage
                await asyncio.shield(self._task)
        except TimeoutError:
            lost = self._waiting
            self._metrics.incr("facts.lost_at_shutdown", lost)
            log.error(
                "the event log did not take the edge's facts within %.1fs; %d facts lost", timeout_s, lost
            )
            self._task.cancel()
        self._task = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        closing = False
        while not closing:
            window, closing = await self._take_window()
            await self._deliver(window)

    async def _take_window(self) -> tuple[list[Record], bool]:
        """The queued facts (at least one, at most WINDOW); True once the close sentinel is seen."""
        first = await self._queue.get()
        if first is None:
            return [], True
        window = [first]
        while len(window) < WINDOW and not self._queue.empty():
            record = self._queue.get_nowait()
            if record is None:
                return window, True
            window.append(record)
        return window, False

    async def _deliver(self, window: list[Record]) -> None:
        """Send the window until every fact in it is acked (or cannot be encoded at all).

        The first pass is pipelined; re-sends go one at a time, so the facts that were not taken
        keep their order among themselves (a later fact taken by the first pass stays ahead).
        """
        pending = self._encode(window)
        self._window_since = time.monotonic()
        attempt = 0
        pending = await self._send_all(pending)
        while pending:
            wait = wait_before(self._backoff_s, attempt)
            attempt += 1
            self._metrics.incr("facts.retried", len(pending))
            log.warning(
                "the event log did not take %d facts (attempt %d); retrying in %.2fs",
                len(pending),
                attempt,
                wait,
            )
            await asyncio.sleep(wait)
            pending = await self._send_in_turn(pending)
        self._window_since = None
        if attempt:
            log.info("the event log took the edge's facts again after %d retries", attempt)

    def _encode(self, window: list[Record]) -> list[tuple[Record, bytes]]:
        encoded = []
        for record in window:
            try:
                encoded.append((record, self._codec.encode(record)))
            except Exception:  # our bug, not the broker's: retrying cannot help
                self._metrics.incr("facts.unencodable")
                self._waiting -= 1
                log.exception(
                    "could not encode %s for call %s", type(record).__name__, getattr(record, "call_id", "-")
                )
        return encoded

    async def _send_all(self, pending: list[tuple[Record, bytes]]) -> list[tuple[Record, bytes]]:
        """Send every fact, then await the acks; return the ones to send again, in order."""
        sent = [(item, await self._start_send(item)) for item in pending]
        acks = [started for _, started in sent if isinstance(started, asyncio.Future)]
        outcomes = iter(await asyncio.gather(*acks, return_exceptions=True))
        return [
            item
            for item, started in sent
            if not self._settled(item, next(outcomes) if isinstance(started, asyncio.Future) else started)
        ]

    async def _send_in_turn(self, pending: list[tuple[Record, bytes]]) -> list[tuple[Record, bytes]]:
        """Send one fact at a time; at the first one to send again, return it and the rest."""
        for index, item in enumerate(pending):
            outcome: object = await self._start_send(item)
            if isinstance(outcome, asyncio.Future):
                try:
                    outcome = await outcome
                except Exception as err:
                    outcome = err
            if not self._settled(item, outcome):
                return pending[index:]
        return []

    async def _start_send(self, item: tuple[Record, bytes]) -> asyncio.Future[object] | Exception:
        """The ack future of one send, or the error the producer refused it with."""
        record, value = item
        try:
            future: asyncio.Future[object] = await self._producer.send(
                self._topic, value=value, key=key_bytes(CALL_INPUTS.key_of(record))
            )
        except Exception as err:  # the producer's buffer timed out, or the record is refused
            return err
        return future

    def _settled(self, item: tuple[Record, bytes], outcome: object) -> bool:
        """Count a fact taken or given up; False if it is worth sending again."""
        if not isinstance(outcome, BaseException):
            self._waiting -= 1
            self._metrics.incr("facts.sent")
            return True
        if is_transient(outcome):
            return False
        # Too large, not authorised...: no retry can help, and retrying would hold up the rest.
        self._waiting -= 1
        self._lose("facts.undeliverable", f"the event log refused it: {outcome!r}", item[0])
        return True


class RecordingPublisher:
    """A fake publisher that keeps every fact in a list."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.healthy = True
        """Set False to play an event log that is away."""

    def publish(self, record: Record) -> bool:
        self.records.append(record)
        return True
