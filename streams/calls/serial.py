"""Jobs run one at a time per key and concurrently across keys, with a bound on jobs in flight."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class SerialPerKey:
    """Each key's jobs run in submission order, one after another; different keys overlap.

    The calls worker waits for the broker's ack of every event before the next input of that
    call may be decided (the table must never run ahead of the log). Inputs of different calls
    do not depend on each other, so their waits overlap here instead of queueing one behind
    another. `submit` waits while `limit` jobs are in flight: that is the back-pressure on the
    consumer. A job must handle its own errors; one that raises anyway is logged, and the
    key's next job still runs. Cancelled (the worker stopping), a key's remaining jobs are
    dropped unrun: their inputs were never acked, so they are read again.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        self._slots = asyncio.Semaphore(limit)
        self._queues: dict[Hashable, deque[Job]] = {}
        self._runners: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished."""
        return sum(len(queue) for queue in self._queues.values())

    async def submit(self, key: Hashable, job: Job) -> None:
        """Queue `job` behind the key's earlier jobs; waits while the limit is reached."""
        await self._slots.acquire()
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)
            return
        queue = self._queues[key] = deque([job])
        runner = asyncio.create_task(self._drain(key, queue), name=f"serial:{key!r}")
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)

    async def idle(self) -> None:
        """Wait until every submitted job has finished."""
        while self._runners:
            await asyncio.gather(*list(self._runners), return_exceptions=True)

    async def _drain(self, key: Hashable, queue: deque[Job]) -> None:
        try:
            while queue:
                try:
                    await queue[0]()
                except Exception:
                    log.exception("job for %r failed", key)
                finally:
                    queue.popleft()
                    self._slots.release()
        finally:
            if queue:  # cancelled (the worker is stopping): the jobs never run give back their slots
                for _ in queue:
                    self._slots.release()
                queue.clear()
            # No await between the empty check and this: a submit sees either the queue or none.
            if self._queues.get(key) is queue:
                del self._queues[key]
