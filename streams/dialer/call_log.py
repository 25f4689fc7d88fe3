"""After a restart: which unreported attempts' calls the call log holds (``recovery``).

Only where their ``CallReceived`` can be is read (``recovery.call_log_search``): the partitions
of the call inputs their call ids are keyed to, from the earliest one's start less a margin, up
to the partitions' ends when the read starts. The call inputs hold every media fact of every
call, so the whole topic could hold the restarted dialer (no dials, no ticks) for minutes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Collection

from aiokafka.partitioner import DefaultPartitioner

from infra.eventlog.reading import DecodedEvent, EventFilter, read_range
from infra.settings import KafkaSettings
from schemas.calls import CallReceived
from schemas.catalog import CALL_INPUTS
from schemas.codec import Codec, DecodeError
from schemas.ids import CallId
from streams.dialer.recovery import CallLogSearch

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0
"""How often a long read of the call log says how far it is."""

_PARTITIONER = DefaultPartitioner()

Read = Callable[..., AsyncIterator[DecodedEvent]]
"""``read_range``'s signature (a test's fake stands in for it)."""


def call_input_partition(call_id: str, partitions: Collection[int]) -> int:
    """The partition of the call inputs that ``call_id``'s records are sent to.

    The call inputs are keyed by call id and sent with no partition. The dialer sends its
    ``CallReceived`` through its Faust producer, whose partitioner (``producer_partitioner``,
    which ``make_app`` leaves unset) is aiokafka's ``DefaultPartitioner``: murmur2 of the key
    bytes, as the Java client, over the partition numbers in ascending order. (Like every keyed
    reader, this assumes the topic never gains partitions.)
    """
    numbers = sorted(partitions)
    return int(_PARTITIONER(call_id.encode(), numbers, numbers))


async def logged_calls(
    kafka: KafkaSettings,
    codec: Codec,
    search: CallLogSearch,
    *,
    topic: str = CALL_INPUTS.name,
    read: Read = read_range,
) -> set[CallId]:
    """The call ids of ``search`` whose ``CallReceived`` the call log holds.

    LookupError if the topic is not on the broker.
    """
    wanted = search.call_ids
    progress = _Progress(topic, len(wanted), search)

    def partitions(numbers: list[int]) -> set[int]:
        chosen = {call_input_partition(call_id, numbers) for call_id in wanted}
        progress.partitions = sorted(chosen)
        return chosen

    found: set[CallId] = set()
    events = read(
        kafka,
        topic,
        EventFilter(type_name=CallReceived.__name__, since=search.since),
        on_plan=progress.planned,
        on_advance=progress.advance,
        on_undecodable=_skip,  # the topic's own consumers dead-letter them
        codec=codec,
        partitions=partitions,
    )
    async for event in events:
        record = event.record
        if isinstance(record, CallReceived) and record.call_id in wanted:
            found.add(record.call_id)
    progress.done(len(found))
    return found


def _skip(err: DecodeError) -> None:
    log.debug("skipping an undecodable call input: %s", err)


class _Progress:
    """Logs the read's plan, then how far it is every ``PROGRESS_EVERY_S``."""

    def __init__(self, topic: str, attempts: int, search: CallLogSearch) -> None:
        self.topic = topic
        self.attempts = attempts
        self.search = search
        self.partitions: list[int] = []
        self.total = 0
        self.read = 0
        self._started = time.monotonic()
        self._next = self._started + PROGRESS_EVERY_S

    def planned(self, total: int) -> None:
        self.total = total
        log.info(
            "looking for the CallReceived of %d unreported attempts in %d records of %s "
            "(partitions %s, stamped from %s)",
            self.attempts,
            total,
            self.topic,
            self.partitions,
            self.search.since.isoformat(),
        )

    def advance(self, count: int) -> None:
        self.read += count
        now = time.monotonic()
        if now >= self._next:
            self._next = now + PROGRESS_EVERY_S
            elapsed = now - self._started
            log.info("read %d of %d records of %s (%.0f s)", self.read, self.total, self.topic, elapsed)

    def done(self, found: int) -> None:
        log.info(
            "read %d of %d records of %s in %.1f s: %d of %d unreported attempts' calls are in the call log",
            self.read,
            self.total,
            self.topic,
            time.monotonic() - self._started,
            found,
            self.attempts,
        )
