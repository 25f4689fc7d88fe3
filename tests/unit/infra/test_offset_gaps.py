"""A fetch stops at a hole in a topic's offsets until it fills or the wait runs out."""

from __future__ import annotations

import struct

import pytest
from aiokafka import TopicPartition
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from infra import offset_gaps
from infra.offset_gaps import GapWaits, UntilGap
from schemas.catalog import CALL_INPUTS

TP = TopicPartition(CALL_INPUTS.name, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def batch(base: int, count: int) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0,
        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    for delta in range(count):
        builder.append(delta, timestamp=0, key=b"k", value=b"%d" % (base + delta), headers=[])
    built = bytes(builder.build())
    return struct.pack(">q", base) + built[8:]  # the batch's base offset is its first field


def fetched(*batches: tuple[int, int]) -> MemoryRecords:
    return MemoryRecords(b"".join(batch(base, count) for base, count in batches))


def read(tp: TopicPartition, records: MemoryRecords, fetch_offset: int) -> tuple[list[int], int]:
    """The offsets a consumer gets from one fetch, and where it fetches next."""
    partition = offset_gaps._GapAwarePartitionRecords(tp, records, None, fetch_offset, None, None, False, 0)
    return [record.offset for record in partition], partition.next_fetch_offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(offset_gaps, "WAITS", GapWaits(max_wait_s=5.0, clock=clock))
    return clock


def test_contiguous_batches_are_read_whole(clock: Clock) -> None:
    assert read(TP, fetched((10, 3), (13, 2)), 10) == ([10, 11, 12, 13, 14], 15)


def test_a_fetch_from_inside_a_batch_is_no_hole(clock: Clock) -> None:
    assert read(TP, fetched((10, 3), (13, 2)), 12) == ([12, 13, 14], 15)


def test_the_batches_before_a_hole_are_read_and_the_next_fetch_starts_at_the_hole(clock: Clock) -> None:
    assert read(TP, fetched((10, 3), (14, 2)), 10) == ([10, 11, 12], 13)


def test_a_hole_at_the_fetch_offset_delivers_nothing_until_it_fills(clock: Clock) -> None:
    assert read(TP, fetched((11, 2)), 10) == ([], 10)
    clock.now += 0.01
    assert read(TP, fetched((10, 1), (11, 2)), 10) == ([10, 11, 12], 13)
    assert offset_gaps.WAITS.skipped == 0


def test_a_hole_that_outlasts_the_wait_is_read_past_and_counted(clock: Clock) -> None:
    assert read(TP, fetched((11, 2)), 10) == ([], 10)
    clock.now += 4.9
    assert read(TP, fetched((11, 2)), 10) == ([], 10)
    clock.now += 0.2
    assert read(TP, fetched((11, 2)), 10) == ([11, 12], 13)
    assert offset_gaps.WAITS.skipped == 1


def test_a_new_hole_gets_its_own_wait(clock: Clock) -> None:
    assert read(TP, fetched((11, 1)), 10) == ([], 10)
    clock.now += 4.0
    assert read(TP, fetched((10, 1), (12, 1)), 10) == ([10], 11)  # 10 arrived, 11 is missing now
    clock.now += 4.0
    assert read(TP, fetched((12, 1)), 11) == ([], 11)  # 4 s into the new hole: still waiting
    clock.now += 1.5
    assert read(TP, fetched((12, 1)), 11) == ([12], 13)


def test_fausts_changelogs_and_leader_topic_are_read_as_the_broker_sends_them(clock: Clock) -> None:
    for topic in ("calls-call-state-changelog", "dialer-__assignor-__leader"):
        assert read(TopicPartition(topic, 0), fetched((11, 2)), 10) == ([11, 12], 13)


def test_other_internal_topics_are_watched_too(clock: Clock) -> None:
    # The dialer's re-keying topic has a writer per dialer instance.
    assert read(TopicPartition("dialer-by-tenant", 0), fetched((11, 2)), 10) == ([], 10)


def test_two_consumers_at_different_holes_of_one_partition_do_not_restart_each_others_wait(
    clock: Clock,
) -> None:
    assert read(TP, fetched((11, 1)), 10) == ([], 10)  # consumer A, hole at 10
    clock.now += 3.0
    assert read(TP, fetched((501, 1)), 500) == ([], 500)  # consumer B, hole at 500
    assert read(TP, fetched((0, 5)), 0) == ([0, 1, 2, 3, 4], 5)  # consumer C reads cleanly
    clock.now += 2.1
    assert read(TP, fetched((11, 1)), 10) == ([11], 12)  # A: 5.1 s at its hole
    assert read(TP, fetched((501, 1)), 500) == ([], 500)  # B: 2.1 s at its hole
    clock.now += 3.0
    assert read(TP, fetched((501, 1)), 500) == ([501], 502)


def test_a_consumer_reaching_a_hole_late_waits_only_what_is_left(clock: Clock) -> None:
    assert read(TP, fetched((11, 1)), 10) == ([], 10)
    clock.now += 5.1
    assert read(TP, fetched((11, 1), (12, 1)), 10) == ([11, 12], 13)


def test_old_holes_are_forgotten_when_a_new_one_is_seen(clock: Clock) -> None:
    for offset in range(0, 100, 10):
        read(TP, fetched((offset + 1, 1)), offset)
    clock.now += 21.0
    read(TP, fetched((1001, 1)), 1000)
    assert len(offset_gaps.WAITS._since) == 1


def test_old_message_formats_have_no_base_offset_and_are_read_as_they_come(clock: Clock) -> None:
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    for offset in (20, 21):
        builder.append(offset, timestamp=0, key=b"k", value=b"v")
    assert read(TP, MemoryRecords(bytes(builder.build())), 10) == ([20, 21], 22)


def test_the_fetcher_looks_partition_records_up_by_name_so_the_patch_reaches_it() -> None:
    from aiokafka.consumer.fetcher import Fetcher

    assert "PartitionRecords" in Fetcher._proc_fetch_request.__code__.co_names


def test_partitions_wait_independently(clock: Clock) -> None:
    other = TopicPartition(CALL_INPUTS.name, 1)
    assert read(TP, fetched((11, 1)), 10) == ([], 10)
    assert read(other, fetched((0, 2)), 0) == ([0, 1], 2)
    clock.now += 5.1
    assert read(TP, fetched((11, 1)), 10) == ([11], 12)


def test_no_wait_configured_reads_past_at_once_and_counts() -> None:
    waits = GapWaits(max_wait_s=0.0, clock=Clock())
    records = UntilGap(fetched((11, 1)), TP, 10, waits)
    assert records.has_next()
    assert records.next_batch().base_offset == 11
    assert waits.skipped == 1


def test_install_replaces_the_fetchers_partition_records() -> None:
    import aiokafka.consumer.fetcher as fetcher

    offset_gaps.install()
    offset_gaps.install()
    assert fetcher.PartitionRecords is offset_gaps._GapAwarePartitionRecords
