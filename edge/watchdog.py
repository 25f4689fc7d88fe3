"""Per-socket deadlines checked by one periodic task, instead of a timer armed on every frame.

The media socket used to wrap each receive in ``asyncio.timeout`` (the idle timeout) and each
Twilio send in ``asyncio.wait_for`` (the stuck-client timeout): two timer handles, and in
Python 3.11 a task, for every 20 ms frame of every call. The deadlines are seconds long, so
checking them a few times a second is just as good.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol


class Watched(Protocol):
    """Something with deadlines: it compares them with the loop time it is given."""

    def check_deadlines(self, now: float) -> None: ...


class Watchdog:
    """Calls ``check_deadlines(loop.time())`` on every watched item each ``interval_s``."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self._interval = interval_s
        self._items: set[Watched] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, item: Watched) -> None:
        self._items.add(item)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="edge-watchdog")

    def discard(self, item: Watched) -> None:
        self._items.discard(item)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._items:
            await asyncio.sleep(self._interval)
            now = loop.time()
            for item in list(self._items):
                item.check_deadlines(now)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
