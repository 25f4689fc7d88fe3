"""Admission to a node's stream limit: an answered call holds its slot until its socket arrives."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class Admission:
    """Counts streams and answered-but-not-yet-connected calls against the node's limit.

    The voice webhook decides: it answers a call with a stream, or refuses it with a spoken
    message. Twilio opens the media WebSocket a moment later. Without a reservation, calls
    answered in between could take the slot, and the socket would be refused with a bare 403:
    dead air and a dropped call instead of the spoken refusal. So an answered call reserves a
    slot; a socket is let in while any reservation is held (the upgrade does not say which call
    it is), and the stream's ``start`` claims one, as the stream itself starts to count; a
    reservation that nothing claims expires after ``hold_s``.

    Pure: the caller passes how many streams are open, the clock is injected.
    """

    def __init__(
        self, limit: int, *, hold_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 0 or hold_s <= 0:
            raise ValueError("need limit >= 0 and hold_s > 0")
        self.limit = limit
        self._hold_s = hold_s
        self._clock = clock
        self._expiries: deque[float] = deque()  # one per reservation, oldest first
        self.expired = 0

    @property
    def reserved(self) -> int:
        """Answered calls whose socket has not arrived (expired ones dropped)."""
        self._expire()
        return len(self._expiries)

    def admit_call(self, open_streams: int) -> bool:
        """Webhook: True reserves a slot for the call; False means refuse it (spoken)."""
        if open_streams + self.reserved >= self.limit:
            return False
        self._expiries.append(self._clock() + self._hold_s)
        return True

    def admit_stream(self, open_streams: int, unstarted: int = 0) -> bool:
        """Media socket upgrade: in if an answered call is still to connect, or a slot is free.

        ``unstarted`` sockets were let in but have not said which call they are: each stands
        for one reservation, or takes a free slot once the reservations are all spoken for.
        """
        reserved = self.reserved
        return unstarted < reserved or open_streams + max(reserved, unstarted) < self.limit

    def claim(self) -> None:
        """A stream started and counts as open from now on: its reservation, if any, is spent."""
        if self.reserved:
            self._expiries.popleft()

    def _expire(self) -> None:
        now, expiries = self._clock(), self._expiries
        while expiries and expiries[0] <= now:
            expiries.popleft()
            self.expired += 1
