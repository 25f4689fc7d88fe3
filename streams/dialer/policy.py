"""Pure dialling policies: number checks, calling windows, back-off and queue order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.agents import AgentConfig

E164 = re.compile(r"\+[1-9][0-9]{1,14}")  # [0-9], not \d: \d also matches other scripts' digits
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$", re.ASCII)


def is_e164(number: str) -> bool:
    """Whether ``number`` is a well-formed E.164 number (+, country code, at most 15 digits)."""
    return bool(E164.fullmatch(number))


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local hours [start, end) in which calls may be placed; end < start wraps midnight."""

    start: time
    end: time
    zone: ZoneInfo

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(self.zone).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_open(self, now: datetime) -> datetime:
        """The first instant at or after ``now`` inside the window."""
        if self.contains(now):
            return now
        local = now.astimezone(self.zone)
        opening = local.replace(hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0)
        if opening <= local:
            opening += timedelta(days=1)
        return opening


def parse_window(text: str | None, timezone: str) -> CallingWindow | None:
    """The window of an agent's ``calling_window`` ("09:00-18:00"); None means any time.

    Raises ValueError for text that is not a window or an unknown zone.
    """
    if text is None or not text.strip():
        return None
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f"calling window {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"calling window {text!r} has an impossible time")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown time zone {timezone!r}") from err
    return CallingWindow(time(h1 % 24, m1), time(h2 % 24, m2), zone)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential back-off for unanswered attempts: base * factor**(attempt-1), capped."""

    max_attempts: int = 3
    base_s: float = 30.0
    factor: float = 2.0
    cap_s: float = 900.0

    def delay(self, attempt: int) -> timedelta:
        """Wait after the ``attempt``-th attempt failed (attempt starts at 1)."""
        seconds = min(self.cap_s, self.base_s * self.factor ** max(0, attempt - 1))
        return timedelta(seconds=seconds)

    def retry_at(self, attempt: int, now: datetime) -> datetime | None:
        """When attempt+1 is due, or None when ``attempt`` was the last one allowed."""
        if attempt >= self.max_attempts:
            return None
        return now + self.delay(attempt)


RETRYABLE_OUTCOMES = frozenset({"busy", "no_answer", "failed", "error"})


def queue_key(priority: int, order: int) -> tuple[int, int]:
    """Sort key of a queued request: higher priority first, then first come first served."""
    return (-priority, order)


def machine_detection_for(config: AgentConfig) -> str | None:
    """Twilio's answering-machine detection mode for an agent's answering-machine policy.

    Leaving a message needs the end of the machine's greeting (``DetectMessageEnd``): with
    ``Enable``, Twilio answers ``machine_start`` at once and the message was spoken over the
    greeting, mostly unrecorded. Hanging up wants the earliest verdict (``Enable``); an agent
    that ignores machines needs no detection, nor its delay before the call is connected.
    """
    if config.answering_machine_policy == "ignore":
        return None
    if config.answering_machine_policy == "leave_message" and config.voicemail_message:
        return "DetectMessageEnd"
    return "Enable"
