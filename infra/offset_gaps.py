"""Consumers wait at a hole in a partition's offsets instead of reading past it (ADR 14).

The embedded Tansu broker (0.6, memory engine) takes a produce in two steps: it raises the
partition's high watermark, then stores the batch. A fetch lists the batches stored below the
watermark. When two producers write one partition at once, the second batch can be stored
before the first, and a fetch in between returns it: offset 941 (not stored yet) is absent,
942 is there. The client takes 942 as the next record and never asks for 941 again. Nothing
is lost on the broker, but that consumer skips the record for good. On the call inputs topic
(the edge, the dialer and the session workers all write it) this silently dropped a call's
``CallReceived`` now and then, and the call never ended.

So a fetch is cut at the first hole in a topic's offsets: the batches before it are
delivered, and the next fetch asks again from the hole. A hole that stays longer than
``max_wait_s`` is taken as real (a produce the broker lost half-way): the consumer logs it
with the offsets and moves on. Apache Kafka leaves no holes in a topic that is not compacted
(transaction markers and aborted batches take up their offsets), which is every topic we read
but Faust's table changelogs and its leader-election topic. Those are left alone: Kafka
compacts changelogs, where holes are normal, and each has one writer at a time, so Tansu's
race (which needs two producers on one partition) can open a hole in them only in a failover.
"""

from __future__ import annotations

import logging
import threading
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
    """Per hole: whether the consumers of this process should still wait at it, or move past it.

    Keyed by the hole (partition and first missing offset), so consumers of one partition at
    different positions never restart each other's wait, and a consumer that reaches a hole
    late waits only what is left of it. Faust's consumer runs in a thread of its own, so the
    book is locked. A hole that fills leaves its entry behind (nothing asks about it again);
    entries four waits old are dropped whenever a new hole is seen. A consumer still asking
    about a hole has read past it long before that.
    """

    def __init__(self, max_wait_s: float = MAX_WAIT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._since: dict[tuple[TopicPartition, int], float] = {}
        self._lock = threading.Lock()
        self.skipped = 0
        """Offsets read past after the wait, counted once per consumer that read past them."""

    def hold(self, tp: TopicPartition, expected: int, found: int) -> bool:
        """A fetch of ``tp`` went from ``expected`` to ``found``: wait (True) or move on (False)."""
        now = self._clock()
        hole = (tp, expected)
        with self._lock:
            since = self._since.get(hole)
            if since is None:
                self._forget_older_than(now - 4 * self._max_wait_s)
                since = self._since[hole] = now
            if now - since < self._max_wait_s:
                return True
            self.skipped += found - expected
        log.warning(
            "%s-%d: offsets %d..%d stayed unreadable for %.1f s; reading past them",
            tp.topic, tp.partition, expected, found - 1, now - since,
        )  # fmt: skip
        return False

    def _forget_older_than(self, cutoff: float) -> None:
        for hole in [hole for hole, since in self._since.items() if since < cutoff]:
            del self._since[hole]


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
        # A batch may start before the fetch offset (a fetch from the middle of a batch). Old
        # message formats (v0/v1) carry no base offset: they are read as they come.
        base = getattr(batch, "base_offset", None)
        if base is not None and base > self._expected and self._waits.hold(self._tp, self._expected, base):
            self._stopped = True  # the rest is fetched again, from the hole
            return False
        self._next = batch
        return True

    def next_batch(self) -> Any:
        if not self.has_next():
            return None
        batch, self._next = self._next, None
        self._expected = max(self._expected, batch.next_offset)
        return batch


WAITS = GapWaits()


class _GapAwarePartitionRecords(StockPartitionRecords):  # type: ignore[misc]
    """aiokafka's PartitionRecords, reading a watched topic's batches only up to a hole."""

    def __init__(
        self, tp: TopicPartition, records: Any, aborted: Any, fetch_offset: int, *rest: Any, **named: Any
    ) -> None:
        if is_watched(tp.topic):
            records = UntilGap(records, tp, fetch_offset, WAITS)
        super().__init__(tp, records, aborted, fetch_offset, *rest, **named)


def install() -> None:
    """Make every aiokafka consumer in this process (Faust's too) wait at holes; idempotent."""
    fetcher.PartitionRecords = _GapAwarePartitionRecords
