"""Counters of one edge node: bad input, security events, drops; read by /metrics and tests."""

from __future__ import annotations

import logging
from collections import Counter, deque

log = logging.getLogger("edge")


class EdgeMetrics:
    """Named monotonic counters (no labels beyond the name; cheap on the media path)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self.bridge_latency_s: deque[float] = deque(maxlen=100_000)
        """Latest Twilio-frame-received -> its bridge frame written, in seconds (bench figure)."""

    def incr(self, name: str, amount: int = 1) -> None:
        self._counts[name] += amount

    def get(self, name: str) -> int:
        return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    def bad_input(self, kind: str, call_id: str, detail: str) -> None:
        """Count and log a frame we could not use; the call goes on."""
        self._counts[f"bad_input.{kind}"] += 1
        log.warning("bad input kind=%s call_id=%s detail=%s", kind, call_id or "-", detail)

    def security_event(self, kind: str, detail: str) -> None:
        """Count and log a refused request (bad signature, bad bridge token)."""
        self._counts[f"security.{kind}"] += 1
        log.warning("security event kind=%s detail=%s", kind, detail)
