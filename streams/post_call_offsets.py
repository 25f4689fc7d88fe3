"""Per partition of call events, where a post-call runner must resume so no job or call is lost."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiokafka import TopicPartition

from schemas.calls import CallEnded, CallFailed, CallReceived
from schemas.envelope import CallEnvelope
from schemas.ids import CallId

LONGEST_CALL = timedelta(hours=4)
"""The platform's limit on an agent's ``max_duration_s`` (``streams.writers.agent_rules``)."""
FORGET_SLACK = timedelta(minutes=15)
"""Past a call's limit: its setup and settling, and a late clock (as for the dialer's lost attempts)."""


@dataclass(frozen=True, slots=True)
class _OpenCall:
    offset: int
    forget_at: datetime


def _forget_at(received: CallReceived) -> datetime:
    limit = timedelta(seconds=received.max_duration_s or 0)
    if not timedelta(0) < limit <= LONGEST_CALL:  # none recorded, or off
        limit = LONGEST_CALL
    return received.occurred_at + limit + FORGET_SLACK


@dataclass(slots=True)
class OffsetBook:
    """Per partition, where a restart must resume so that no job and no call is lost.

    The oldest of: an event whose jobs have not finished; the first event of a call not yet
    ended (the workers know a live call only from its events, in memory: resuming past its
    start would leave its end with nothing to go on); after the last event read. A call's end
    jobs hold its first event until they finish. A call still open past its limit is let go
    (``overdue``); time is the latest ``occurred_at`` read in the partition.
    """

    _read: dict[TopicPartition, int] = field(default_factory=dict)
    _running: dict[TopicPartition, Counter[int]] = field(default_factory=dict)
    _open: dict[TopicPartition, dict[CallId, _OpenCall]] = field(default_factory=dict)
    _now: dict[TopicPartition, datetime] = field(default_factory=dict)
    _handled: dict[TopicPartition, int] = field(default_factory=dict)
    """How far the partition had been read when the commit it resumed from was made."""

    def read(self, tp: TopicPartition, offset: int) -> None:
        self._read[tp] = offset + 1

    def follow(self, tp: TopicPartition, offset: int, event: object) -> int | None:
        """The offset the jobs of the event at ``offset`` hold: for a call's end, the call's first.

        None for the end of a call that started before the commit the partition resumed from:
        that call had ended, and its jobs had finished, before the commit was made.
        """
        if isinstance(event, CallEnvelope):
            now = self._now.get(tp)
            self._now[tp] = event.occurred_at if now is None else max(now, event.occurred_at)
        calls = self._open.setdefault(tp, {})
        if isinstance(event, CallReceived):
            calls.setdefault(event.call_id, _OpenCall(offset, _forget_at(event)))
        elif isinstance(event, CallEnded | CallFailed):
            call = calls.pop(event.call_id, None)
            if call is not None:
                return call.offset
            if offset < self._handled.get(tp, 0):
                return None
        return offset

    def overdue(self, tp: TopicPartition) -> list[CallId]:
        """The calls open in ``tp`` past their limit: let go, they hold its commit no more."""
        now, calls = self._now.get(tp), self._open.get(tp, {})
        due = [call_id for call_id, call in calls.items() if now is not None and call.forget_at <= now]
        for call_id in due:
            del calls[call_id]
        return due

    def started(self, tp: TopicPartition, offset: int) -> None:
        self._running.setdefault(tp, Counter())[offset] += 1

    def finished(self, tp: TopicPartition, offset: int) -> None:
        running = self._running[tp]
        running[offset] -= 1
        if running[offset] <= 0:
            del running[offset]

    def reset(self, tp: TopicPartition) -> list[CallId]:
        """Forget what was read of a revoked partition; the calls it had open are returned.

        A partition that comes back resumes at the group's commit, perhaps another worker's
        (further on): the position read before would commit it back. Jobs still running keep
        their holds; they have not finished, whoever owns the partition now.
        """
        self._read.pop(tp, None)
        self._now.pop(tp, None)
        self._handled.pop(tp, None)
        return list(self._open.pop(tp, {}))

    def resumed(self, tp: TopicPartition, handled: int | None) -> None:
        """How far ``tp`` had been read when the commit it resumes from was made (None: unknown)."""
        if handled is None:
            self._handled.pop(tp, None)
        else:
            self._handled[tp] = handled

    def committable(self) -> dict[TopicPartition, int]:
        """Where each partition may resume: its oldest unfinished job or open call, else after the read."""
        return {
            tp: min([done, *self._running.get(tp, ()), *(c.offset for c in self._open.get(tp, {}).values())])
            for tp, done in self._read.items()
        }

    def handled(self, tp: TopicPartition) -> int:
        """A commit's note: how far ``tp`` was read, by us or before the commit we resumed from."""
        return max(self._read.get(tp, 0), self._handled.get(tp, 0))
