"""The example consumer holds a partition at a hole in its offsets, as docs/integrators.md asks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from aiokafka import TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))
from integrator_consumer import OffsetHoles

TP = TopicPartition("voice.calls.events.v1", 3)
OTHER = TopicPartition("voice.calls.events.v1", 4)


def test_records_in_order_are_read_from_wherever_the_partition_starts() -> None:
    holes = OffsetHoles(max_wait_s=5.0)
    assert [holes.admit(TP, offset, now=0.0) for offset in (40, 41, 42)] == [True, True, True]
    assert holes.next[TP] == 43


def test_a_record_past_a_hole_waits_until_the_hole_fills() -> None:
    holes = OffsetHoles(max_wait_s=5.0)
    assert holes.admit(TP, 10, now=0.0)
    assert not holes.admit(TP, 12, now=1.0)  # 11 is not readable yet: fetch again from it
    assert holes.next[TP] == 11
    assert not holes.admit(TP, 12, now=2.0)
    assert holes.admit(TP, 11, now=2.5)  # the earlier batch arrived
    assert holes.admit(TP, 12, now=2.5)
    assert holes.next[TP] == 13


def test_a_hole_that_never_fills_is_read_past_after_the_wait(capsys: pytest.CaptureFixture[str]) -> None:
    holes = OffsetHoles(max_wait_s=5.0)
    assert holes.admit(TP, 10, now=0.0)
    assert not holes.admit(TP, 12, now=1.0)
    assert not holes.admit(TP, 12, now=5.9)
    assert holes.admit(TP, 12, now=6.0)
    assert "offsets 11-11 never came" in capsys.readouterr().err
    # The next hole waits afresh.
    assert not holes.admit(TP, 20, now=7.0)
    assert not holes.admit(TP, 20, now=11.9)


def test_partitions_wait_independently() -> None:
    holes = OffsetHoles(max_wait_s=5.0)
    assert holes.admit(TP, 10, now=0.0)
    assert holes.admit(OTHER, 100, now=0.0)
    assert not holes.admit(TP, 12, now=1.0)
    assert holes.admit(OTHER, 101, now=1.0)
