"""One shared 20 ms clock for every call's paced playback, instead of one timer per call.

The frame period is split into ``slots`` phases (2 ms apart by default). A call that starts
playing joins the phase that fires next and keeps it while it plays; the work of a tick is the
calls of one phase only, so the sends of 200 calls are spread over the 20 ms instead of
bunching into one burst that would delay caller audio. The clock only calls players: each call
keeps its own schedule (``edge.call``), so pacing, catch-up after a stall and the lag limit
are what they were with one timer per call. The clock runs only while some call plays.

A player is called synchronously from the clock's timer (``Player.on_tick``), not woken as a
task: a future, a task step and two coroutine frames per frame cost about 7 µs of the edge's
CPU per playback frame (10,000 frames a second at 200 calls; ``bench/RESULTS.md``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)
FRAME_S = 0.02
MAX_LAG_S = 0.2
"""Behind schedule by more than this (a stalled loop): restart the clock instead of bursting."""


class Player(Protocol):
    """A call on the clock."""

    def on_tick(self, now: float) -> bool:
        """Send what is due at loop time ``now``; False to leave the clock."""
        ...


class PlaybackClock:
    """Hands out phases and calls, each frame period, the players on a phase."""

    def __init__(self, *, period_s: float = FRAME_S, slots: int = 10) -> None:
        self._slots = slots
        self._step = period_s / slots
        self._players: list[list[Player]] = [[] for _ in range(slots)]
        self._pending = 0  # players across all slots
        self._base = 0.0
        self._fired = 0  # ticks since `_base`
        self._last_busy = 0  # the last tick that called someone
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def next_slot(self) -> int:
        """The phase that fires next: where a call that starts playing now should go."""
        return self._fired % self._slots if self._timer is not None else 0

    def join(self, slot: int, player: Player) -> None:
        """Call ``player.on_tick`` at every firing of ``slot`` until it returns False."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._players[slot].append(player)
        self._pending += 1
        if self._timer is None:
            self._fired = self._last_busy = slot
            self._base = loop.time() - slot * self._step
            self._timer = loop.call_at(self._base + slot * self._step, self._fire)

    def _fire(self) -> None:
        """Fire every slot that is due (several after a stall), then arm the next one."""
        loop = self._loop
        assert loop is not None
        now = loop.time()
        if now - (self._base + self._fired * self._step) > MAX_LAG_S:
            self._base = now - self._fired * self._step  # stalled: go on from now
        while True:
            slot = self._fired % self._slots
            players = self._players[slot]
            if players:
                self._players[slot] = staying = []
                left = 0
                for player in players:
                    try:
                        keep = player.on_tick(now)
                    except Exception:  # one call's failure must not stop every call's playback
                        log.exception("a playback tick failed; the call leaves the clock")
                        keep = False
                    if keep:
                        staying.append(player)
                    else:
                        left += 1
                self._pending -= left
                self._last_busy = self._fired
            self._fired += 1
            due = self._base + self._fired * self._step
            if due > now:
                break
        if not self._pending and self._fired - self._last_busy > self._slots:
            self._timer = None  # a whole period without a waiter: nobody is playing
            return
        self._timer = loop.call_at(due, self._fire)

    def close(self) -> None:
        """Stop the clock and drop every player."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for players in self._players:
            players.clear()
        self._pending = 0
