"""Consumers wait at a hole in a partition's offsets instead of reading past it (ADR 14).

The embedded Tansu broker (0.6, memory engine) takes a produce in two steps: it raises the
partition's high watermark, then stores the batch. A fetch lists the batches stored below the
watermark. When two producers write one partition at once, the second batch can be stored
before the first, and a fetch in between returns it: offsets 941 (not stored yet) is absent,
942 is there. The client takes 942 as the next record and never asks for 941 again. Nothing
is lost on the broker, but that consumer skips the record for good. On the call inputs topic
(the edge, the dialer and the session workers all write it) this silently dropped a call's
``CallReceived`` now and then, and the call never ended.

So a fetch is cut at the first hole in a topic's offsets: the batches before it are
delivered, and the next fetch asks again from the hole. A hole that stays longer than
``max_wait_s`` is taken as real (a produce the broker lost half-way): the consumer logs it
with the offsets and moves on. Apache Kafka leaves no holes in topics that are neither
compacted nor transactional, which is every topic we read but Faust's table changelogs (and
its leader-election topic). Those are left alone: Kafka compacts changelogs, where holes are
normal, and each has one writer at a time, so Tansu's race (which needs two producers on one
partition) rarely opens a hole in them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import aiokafka.consumer.fetcher as fetcher
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import PartitionRecords as StockPartitionRecords

log = logging.getLogger(__name__)

MAX_WAIT_S = 5.0
"""How long a consumer waits for a hole to fill before it reads past it."""

_UNWATCHED_SUFFIXES = ("-changelog", "__assignor-__leader")
"""Faust's table changelogs and its leader topic: compacted on Kafka, one writer at a time."""


def is_watched(topic: str) -> bool:
    """Whether a hole in ``topic``'s offsets means "not stored yet" rather than compaction."""
    return not topic.endswith(_UNWATCHED_SUFFIXES)


class GapWaits:
    """Per partition: whether a consumer should still wait at a hole, or move past it."""

    def __init__(self, max_wait_s: float = MAX_WAIT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._since: dict[TopicPartition, tuple[int, float]] = {}
        self.skipped = 0
        """Holes read past after the wait: records this process's consumers never saw."""

    def hold(self, tp: TopicPartition, expected: int, found: int) -> bool:
        """A fetch of ``tp`` went from ``expected`` to ``found``: wait (True) or move on (False)."""
        now = self._clock()
        since = self._since.get(tp)
        if since is None or since[0] != expected:
            since = self._since[tp] = (expected, now)
        if now - since[1] < self._max_wait_s:
            return True
        del self._since[tp]
        self.skipped += found - expected
        log.warning(
            "%s-%d: offsets %d..%d stayed unreadable for %.1f s; reading past them",
            tp.topic, tp.partition, expected, found - 1, now - since[1],
        )  # fmt: skip
        return False

    def passed(self, tp: TopicPartition) -> None:
        """A fetch of ``tp`` continued without a hole."""
        if self._since:
            self._since.pop(tp, None)


class UntilGap:
    """A fetched response's record batches, ending before the first hole in their offsets."""

    __slots__ = ("_expected", "_next", "_records", "_stopped", "_tp", "_waits")

    def __init__(self, records: Any, tp: TopicPartition, fetch_offset: int, waits: GapWaits) -> None:
        self._records = records
        self._tp = tp
        self._expected = fetch_offset
        self._waits = waits
        self._next: Any = None
        self._stopped = False

    def has_next(self) -> bool:
        if self._next is not None:
            return True
        if self._stopped or not self._records.has_next():
            return False
        batch = self._records.next_batch()
        # A batch may start before the fetch offset (a fetch from the middle of a batch).
        if batch.base_offset > self._expected and self._waits.hold(
            self._tp, self._expected, batch.base_offset
        ):
            self._stopped = True  # the rest is fetched again, from the hole
            return False
        self._waits.passed(self._tp)
        self._next = batch
        return True

    def next_batch(self) -> Any:
        if not self.has_next():
            return None
        batch, self._next = self._next, None
        self._expected = max(self._expected, batch.next_offset)
        return batch

    def size_in_bytes(self) -> int:
        return int(self._records.size_in_bytes())


WAITS = GapWaits()


class _GapAwarePartitionRecords(StockPartitionRecords):  # type: ignore[misc]
    """aiokafka's PartitionRecords, reading a watched topic's batches only up to a hole."""

    def __init__(self, tp: TopicPartition, records: Any, aborted: Any, fetch_offset: int, *rest: Any) -> None:
        if is_watched(tp.topic):
            records = UntilGap(records, tp, fetch_offset, WAITS)
        super().__init__(tp, records, aborted, fetch_offset, *rest)


def install() -> None:
    """Make every aiokafka consumer in this process (Faust's too) wait at holes; idempotent."""
    fetcher.PartitionRecords = _GapAwarePartitionRecords
