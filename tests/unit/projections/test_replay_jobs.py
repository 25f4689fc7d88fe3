"""Splitting a replay's partitions across jobs: every partition left once, loads near even, order kept."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from projections.replay_jobs import shares_of, split


@dataclass(frozen=True)
class _Named:
    name: str


def test_split_three_equal_partitions_over_two_jobs_gives_two_and_one() -> None:
    assert split({"p0": 100, "p1": 100, "p2": 100}, 2) == [["p0", "p2"], ["p1"]]


def test_split_puts_the_largest_loads_apart_and_leaves_out_keys_with_nothing_left() -> None:
    assert split({"a": 10, "b": 6, "c": 5, "d": 4, "done": 0}, 2) == [["a", "d"], ["b", "c"]]


def test_split_never_makes_empty_shares() -> None:
    assert split({"a": 5, "b": 1}, 8) == [["a"], ["b"]]
    assert split({"a": 0}, 2) == []


@given(st.dictionaries(st.integers(0, 50), st.integers(0, 1000), max_size=30), st.integers(1, 6))
def test_split_assigns_each_loaded_key_once_within_the_greedy_bound(loads: dict[int, int], jobs: int) -> None:
    shares = split(loads, jobs)
    assigned = [k for share in shares for k in share]
    assert sorted(assigned) == sorted(k for k, n in loads.items() if n > 0)
    assert len(shares) <= jobs
    if shares:
        total, largest = sum(loads.values()), max(loads.values())
        assert max(sum(loads[k] for k in share) for share in shares) <= total / jobs + largest


def test_shares_of_keeps_the_projection_order_and_only_partitions_with_records_left() -> None:
    agents, calls = _Named("agents"), _Named("calls")
    a0, c0, c1, c2 = (TopicPartition("agents", 0), *(TopicPartition("calls", n) for n in range(3)))
    plans = [
        (agents, {a0: 4}, {a0: 9}),
        (calls, {c0: 0, c1: 10, c2: 7}, {c0: 50, c1: 40, c2: 7}),
    ]

    shares = shares_of(plans, 2)  # type: ignore[arg-type]

    assert shares == [
        (("calls", {c0: 0}, {c0: 50}),),
        (("agents", {a0: 4}, {a0: 9}), ("calls", {c1: 10}, {c1: 40})),
    ]
