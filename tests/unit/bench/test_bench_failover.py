"""The failover bench's pure helpers: whose calls, which worker to kill, times after the kill."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))
from bench_failover import busiest, first_after, logged_at, owners_of, since_ms


@dataclass
class GeminiSessionOpened:
    worker_id: str


@dataclass
class GeminiSessionResumed:
    worker_id: str


@dataclass
class ResumptionHandleUpdated:
    handle: str


def test_a_calls_owner_is_the_latest_worker_to_open_or_resume_its_session() -> None:
    events: dict[str, list[object]] = {
        "c1": [GeminiSessionOpened("a"), ResumptionHandleUpdated("h")],
        "c2": [GeminiSessionOpened("a"), GeminiSessionResumed("b"), ResumptionHandleUpdated("h")],
        "c3": [ResumptionHandleUpdated("h")],
    }

    assert owners_of(events) == {"c1": "a", "c2": "b"}


def test_the_busiest_worker_owns_the_most_calls_and_a_tie_goes_to_the_first_named() -> None:
    assert busiest({"c1": "b", "c2": "a", "c3": "b"}) == "b"
    assert busiest({"c1": "b", "c2": "a"}) == "a"


def test_first_after_and_since_ms() -> None:
    assert first_after([5.0, 1.0, 3.0, 2.0], 2.0) == 3.0
    assert first_after([1.0, 2.0], 2.0) is None
    assert since_ms(12.3456, 10.0) == 2345.6
    assert since_ms(None, 10.0) is None


def test_logged_at_is_the_first_matching_line_after_the_time() -> None:
    log = (
        "[2026-11-27 18:55:16,231] [1] [INFO] Revoking previously assigned partitions set()\n"
        "  a continuation line that mentions Revoking previously assigned\n"
        "[2026-11-27 18:55:34,251] [1] [INFO] Revoking previously assigned partitions\n"
    )
    early = datetime(2026, 11, 27, 18, 55, 16, 231000).timestamp()

    assert logged_at(log, "Revoking previously assigned", early - 1) == early
    assert logged_at(log, "Revoking previously assigned", early) == pytest.approx(early + 18.02)
    assert logged_at(log, "Setting newly assigned", 0.0) is None
