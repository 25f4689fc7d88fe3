"""Which calls in a worker's state table are live: the clock's work list, kept without rescanning."""

from __future__ import annotations

from collections.abc import Callable, Iterable

RESCAN_TICKS_AFTER_REBALANCE = 10
"""Ticks after a rebalance that rescan the table: its changelog recovery writes the table
directly (our agent never sees those calls), and a call found a tick late is resumed a tick late."""

RESCAN_EVERY_TICKS = 60
"""A full rescan now and then anyway, so a missed update cannot leave a live call unticked."""


class LiveCallKeys:
    """The keys of the live calls in the table, so each clock tick costs the live calls only.

    The table keeps every call the worker has handled (ended ones too: late facts and
    re-deliveries are decided against them), so scanning and decoding all of it every second
    grows with every call ever taken. The agent reports each state it stores; the table is
    rescanned only after start-up, after a rebalance (for a few ticks, while recovery fills
    it) and every ``RESCAN_EVERY_TICKS`` ticks.
    """

    def __init__(self) -> None:
        self._keys: set[bytes] = set()
        self._rescans_left = RESCAN_TICKS_AFTER_REBALANCE  # start-up is a rebalance too
        self._ticks = 0
        self.rescans = 0

    def rebalanced(self) -> None:
        """Partitions moved: the table's contents change wholesale."""
        self._rescans_left = RESCAN_TICKS_AFTER_REBALANCE

    def stored(self, key: bytes, live: bool) -> None:
        """The agent stored this call's state."""
        if live:
            self._keys.add(key)
        else:
            self._keys.discard(key)

    def to_tick(self, scan: Callable[[], Iterable[bytes]]) -> list[bytes]:
        """This tick's work list; ``scan`` yields the live keys of the whole table when asked."""
        self._ticks += 1
        if self._rescans_left > 0 or self._ticks % RESCAN_EVERY_TICKS == 0:
            self._rescans_left = max(0, self._rescans_left - 1)
            self._keys = set(scan())
            self.rescans += 1
        return sorted(self._keys)
