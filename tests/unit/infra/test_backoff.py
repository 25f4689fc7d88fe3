"""A back-off schedule is followed, then its last wait repeats."""

from __future__ import annotations

from infra.backoff import wait_before


def test_the_schedule_then_its_last_wait_for_ever() -> None:
    assert [wait_before((0.5, 1.0, 5.0), attempt) for attempt in range(5)] == [0.5, 1.0, 5.0, 5.0, 5.0]
