"""Capped back-off schedules: the wait before each retry of an outage, the last one repeating."""

from __future__ import annotations

from collections.abc import Sequence


def wait_before(schedule: Sequence[float], attempt: int) -> float:
    """The wait before retry ``attempt`` (0 for the first): its entry, or the schedule's last."""
    return schedule[min(attempt, len(schedule) - 1)]
