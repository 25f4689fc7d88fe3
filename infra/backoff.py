"""Capped back-off schedules: the wait before each retry of an outage, the last one repeating."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def wait_before(schedule: Sequence[float], attempt: int) -> float:
    """The wait before retry ``attempt`` (0 for the first): its entry, or the schedule's last."""
    return schedule[min(attempt, len(schedule) - 1)]


async def retry_while(
    op: Callable[[], Awaitable[T]],
    retryable: Callable[[BaseException], bool],
    schedule: Sequence[float],
    on_retry: Callable[[BaseException, float], None],
) -> T:
    """``op()``, attempted again after each retryable error with the schedule's waits (told to
    ``on_retry`` first, with the wait); any other error is raised."""
    attempt = 0
    while True:
        try:
            return await op()
        except Exception as err:
            if not retryable(err):
                raise
            wait = wait_before(schedule, attempt)
            attempt += 1
            on_retry(err, wait)
            await asyncio.sleep(wait)
