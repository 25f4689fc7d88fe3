"""What a rebuild is checked against: rows and checksums per table, and counts derived from the log.

Two things are verified after a replay:

* **against the log** — a second, decode-only pass over the replayed offsets counts what the
  tables must hold: one ``call`` per distinct call id, one ``call_event`` per distinct
  (call id, seq) with a checksum of (call id, seq, event id) that must equal the table's, one
  ``transcript_segment`` per (call id, segment index), one ``tool_call`` per (call id, tool call
  id), one ``recording`` per call with a recording; one ``agent`` per ``AgentCreated``, one
  ``agent_version`` per (agent, version) published; one ``knowledge_base`` per
  ``KnowledgeBaseCreated``. Tables whose rows are not one-per-event (``document``, ``chunk``,
  ``analytics_daily``, ``command_result``) are not counted from the log. Records the projections
  refuse by their own rules (a NUL or an over-long id, a seq below 1, another tenant's event for
  a call) are left out of the counts; records that do not decode are reported with where the
  first few are, not failed on (the live projections dead-letter both kinds the same way), and
  ``voiceagent replay`` refuses to swap while there are any, unless told otherwise.
* **a checksum of every table** — row count and an order-independent sum of the md5 of each whole
  row, so two schemas can be compared cheaply (rebuild against live, or before and after a swap).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, get_args

from aiokafka import TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.deadletter import RecordDecodeError, decode_record
from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.settings import KafkaSettings
from projections.runner import MAX_AGGREGATE_CHARS, unstorable
from schemas import agents, calls, knowledge
from schemas.codec import Codec

_ROW_SUM = "coalesce(sum(('x' || substr(md5({expr}), 1, 15))::bit(60)::bigint), 0)"
_EVENT_KEY = "call_id || ':' || seq || ':' || event_id"
_CALL_TYPES = get_args(calls.CallEvent)


@dataclass(frozen=True, slots=True)
class TableSum:
    rows: int
    checksum: int


async def table_sums(engine: AsyncEngine, schema: str, tables: Iterable[str]) -> dict[str, TableSum]:
    """Rows and whole-row checksum of each table of ``schema``."""
    sums = {}
    async with engine.connect() as connection:
        for table in tables:
            sql = f'SELECT count(*), {_ROW_SUM.format(expr="t::text")} FROM "{schema}".{table} t'
            rows, checksum = (await connection.execute(text(sql))).one()
            sums[table] = TableSum(int(rows), int(checksum))
    return sums


def key_sum(keys: Iterable[str]) -> int:
    """The Python twin of the SQL ``_ROW_SUM`` over already-built key strings."""
    return sum(int(hashlib.md5(k.encode(), usedforsecurity=False).hexdigest()[:15], 16) for k in keys)


@dataclass
class Undecodable:
    """Records that did not decode: how many, and where the first few are and why."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    KEPT: ClassVar[int] = 5

    def add(self, error: RecordDecodeError) -> None:
        self.count += 1
        if len(self.first) < self.KEPT:
            self.first.append(str(error))  # topic[partition]@offset: reason

    def merge(self, other: Undecodable) -> None:
        self.count += other.count
        self.first = (self.first + other.first)[: self.KEPT]

    def describe(self) -> str:
        more = f"; and {self.count - len(self.first)} more" if self.count > len(self.first) else ""
        return "; ".join(self.first) + more


@dataclass
class LogCounts:
    """Distinct keys per table, as the log says they must be."""

    keys: dict[str, set[object]] = field(default_factory=lambda: defaultdict(set))
    event_keys: dict[tuple[str, int], str] = field(default_factory=dict)
    undecodable: Undecodable = field(default_factory=Undecodable)
    refused: int = 0
    call_tenants: dict[str, str] = field(default_factory=dict)

    def add(self, record: object) -> None:
        if _refused(record) or (isinstance(record, _CALL_TYPES) and not self._owns(record)):
            self.refused += 1
            return
        if isinstance(record, _CALL_TYPES):
            self._add_call(record)
            return
        match record:
            case agents.AgentCreated():
                self.keys["agent"].add(record.agent_id)
            case agents.AgentVersionPublished():
                self.keys["agent_version"].add((record.agent_id, record.version))
            case knowledge.KnowledgeBaseCreated():
                self.keys["knowledge_base"].add(record.kb_id)
            case _:
                return

    def _owns(self, event: calls.CallEvent) -> bool:
        """The call projection's rule: a call belongs to the tenant of its first event."""
        return self.call_tenants.setdefault(event.call_id, event.tenant_id) == event.tenant_id

    def _add_call(self, event: calls.CallEvent) -> None:
        self.keys["call"].add(event.call_id)
        self.event_keys.setdefault((event.call_id, event.seq), event.event_id)
        match event:
            case calls.TranscriptSegment():
                self.keys["transcript_segment"].add((event.call_id, event.segment_index))
            case calls.ToolCallRequested() | calls.ToolCallCompleted() | calls.ToolCallFailed():
                self.keys["tool_call"].add((event.call_id, event.tool_call_id))
            case calls.RecordingAvailable():
                self.keys["recording"].add(event.call_id)
            case _:
                return

    def expected_rows(self) -> dict[str, int]:
        counts = {table: len(keys) for table, keys in self.keys.items()}
        if self.event_keys or "call" in self.keys:
            counts["call_event"] = len(self.event_keys)
        return counts

    def call_event_sum(self) -> int:
        return key_sum(f"{c}:{s}:{e}" for (c, s), e in self.event_keys.items())


async def count_log(
    kafka: KafkaSettings,
    ranges: Mapping[TopicPartition, tuple[int, int]],
    *,
    stop: asyncio.Event | None = None,
    on_advance: Callable[[int], None] = lambda n: None,
) -> LogCounts:
    """Decode every record in ``ranges`` ([start, end) per partition) and count the keys.

    Once ``stop`` is set it returns within a fetch, with the counts so far (incomplete).
    """
    counts = LogCounts()
    todo = {tp: end for tp, (start, end) in ranges.items() if start < end}
    stop = stop or asyncio.Event()
    if not todo or stop.is_set():
        return counts
    codec = Codec.single_object()
    consumer = make_consumer(kafka, group_id=None, max_partition_fetch_bytes=8 << 20)
    await start_consumer(consumer)
    try:
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, ranges[tp][0])
        while todo and not stop.is_set():
            batches = await consumer.getmany(*todo, timeout_ms=500, max_records=10_000)
            for tp, messages in batches.items():
                wanted = [m for m in messages if m.offset < todo.get(tp, -1)]
                for message in wanted:
                    try:
                        counts.add(decode_record(codec, message))
                    except RecordDecodeError as error:
                        counts.undecodable.add(error)
                on_advance(len(wanted))
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
    finally:
        await stop_consumer(consumer)
    return counts


def _refused(record: object) -> bool:
    """Would every projection dead-letter this record before applying it (see ProjectionRunner)?"""
    if unstorable(record) is not None:  # type: ignore[arg-type]
        return True
    seq = getattr(record, "seq", 1)
    call_id = getattr(record, "call_id", "")
    return (isinstance(seq, int) and seq < 1) or (
        isinstance(call_id, str) and len(call_id) > MAX_AGGREGATE_CHARS
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """Per table: (rows found, rows the log implies or None); the problems, empty when all is well; notes."""

    sums: dict[str, TableSum]
    expected: dict[str, int]
    problems: list[str]
    notes: list[str] = field(default_factory=list)
    undecodable: Undecodable = field(default_factory=Undecodable)


async def verify(engine: AsyncEngine, schema: str, tables: Iterable[str], counts: LogCounts) -> Verdict:
    """Compare the rebuilt tables with what the log implies."""
    sums = await table_sums(engine, schema, tables)
    expected = {t: n for t, n in counts.expected_rows().items() if t in sums}
    problems = [
        f"{table}: {sums[table].rows} rows, the log implies {rows}"
        for table, rows in sorted(expected.items())
        if sums[table].rows != rows
    ]
    if "call_event" in sums:
        sql = f'SELECT {_ROW_SUM.format(expr=_EVENT_KEY)} FROM "{schema}".call_event'
        async with engine.connect() as connection:
            found = int((await connection.execute(text(sql))).scalar_one())
        if found != counts.call_event_sum():
            problems.append("call_event: (call_id, seq, event_id) checksum differs from the log's")
    notes = []
    if counts.undecodable.count:
        notes.append(
            f"{counts.undecodable.count} records in the range do not decode (not applied; live, "
            f"dead-lettered): {counts.undecodable.describe()}"
        )
    if counts.refused:
        notes.append(
            f"{counts.refused} records in the range are refused by the projections' rules (not counted)"
        )
    return Verdict(sums, expected, problems, notes, counts.undecodable)
