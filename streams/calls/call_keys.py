"""The keys of a worker's call table by what its clock owes them: a tick (live) or forgetting (ended)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

RESCAN_TICKS_AFTER_REBALANCE = 10
"""Ticks after a rebalance that rescan the table: its changelog recovery writes the table
directly (our agent never sees those calls), and a call found a tick late is resumed a tick late."""

FORGETS_PER_TICK = 100
"""At most this many forget ticks per clock tick: the first run after an upgrade finds every
call ever taken overdue, and the live calls' ticks must not wait behind them."""

RESCAN_EVERY_TICKS = 60
"""A full rescan now and then anyway, so a missed update cannot leave a call unticked or kept."""

Entry = tuple[bytes, datetime | None]
"""A stored call: its key and when it ended (None while it is live)."""


class CallKeys:
    """Which calls the clock ticks, and which ended ones it may forget, without rescanning.

    The table keeps ended calls for a while (late facts and re-deliveries are decided against
    them), so scanning and decoding all of it every second would grow with every call taken.
    The agent reports each state it stores; the table is rescanned only after start-up, after
    a rebalance (for a few ticks, while recovery fills it) and every ``RESCAN_EVERY_TICKS``.
    """

    def __init__(self) -> None:
        self._live: set[bytes] = set()
        self._ended: dict[bytes, datetime] = {}
        self._forgetting: set[bytes] = set()  # forget ticks sent, not yet processed by the agent
        self._rescans_left = RESCAN_TICKS_AFTER_REBALANCE  # start-up is a rebalance too
        self._ticks = 0
        self.rescans = 0

    def rebalanced(self) -> None:
        """Partitions moved: the table's contents change wholesale."""
        self._rescans_left = RESCAN_TICKS_AFTER_REBALANCE
        self._forgetting.clear()  # a tick lost with a partition is sent again by its new owner

    def stored(self, key: bytes, ended_at: datetime | None) -> None:
        """The agent stored this call's state (``ended_at`` None: the call is live)."""
        if ended_at is None:
            self._live.add(key)
            self._ended.pop(key, None)
            self._forgetting.discard(key)
        else:
            self._live.discard(key)
            if key not in self._forgetting:
                self._ended[key] = ended_at

    def forgotten(self, key: bytes) -> None:
        """The agent deleted this call from the table."""
        self._live.discard(key)
        self._ended.pop(key, None)
        self._forgetting.discard(key)

    def to_tick(self, scan: Callable[[], Iterable[Entry]]) -> list[bytes]:
        """This tick's live calls; ``scan`` yields every stored call when asked."""
        self._ticks += 1
        if self._rescans_left > 0 or self._ticks % RESCAN_EVERY_TICKS == 0:
            self._rescans_left = max(0, self._rescans_left - 1)
            self._live, self._ended = set(), {}
            for key, ended_at in scan():
                self.stored(key, ended_at)
            self.rescans += 1
        return sorted(self._live)

    def to_forget(self, now: datetime, retention: timedelta, limit: int = FORGETS_PER_TICK) -> list[bytes]:
        """Up to ``limit`` ended calls kept for ``retention`` already, each handed out once.

        Once handed out, a key waits for the agent's ``forgotten`` (rescans do not hand it out
        again); after a rebalance it may be handed out anew.
        """
        due = sorted(key for key, ended_at in self._ended.items() if now - ended_at >= retention)[:limit]
        for key in due:
            del self._ended[key]
        self._forgetting.update(due)
        return due
