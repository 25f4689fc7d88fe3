"""Following a topic: decoded events as they arrive, printed pretty or as JSON lines."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.markup import escape

from infra.eventlog.export import jsonl_line
from infra.eventlog.reading import DecodedEvent, EventFilter, codec_for, decode, end_offsets, offsets_at
from infra.kafka import make_consumer, stop_consumer
from infra.settings import KafkaSettings
from schemas.codec import DecodeError

_ENVELOPE = {"tenant_id", "call_id", "agent_id", "kb_id", "seq", "event_id", "occurred_at", "correlation_id"}


def pretty_line(event: DecodedEvent) -> str:
    """One rich-markup line: time, type, key, seq, then the event's own fields."""
    record = event.record
    when = datetime.fromtimestamp(event.timestamp_ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
    key = event.key.decode("utf-8", "replace") if event.key is not None else "-"
    seq = getattr(record, "seq", None)
    fields = " ".join(
        f"{f.name}={getattr(record, f.name)!r}" for f in dataclasses.fields(record) if f.name not in _ENVELOPE
    )
    return (
        f"[dim]{when}[/] [bold cyan]{type(record).__name__}[/] [yellow]{escape(key)}[/]"
        f"{f' seq={seq}' if seq is not None else ''} "
        f"[dim]p{event.partition}@{event.offset}[/] {escape(fields)}"
    )


async def tail_events(
    kafka: KafkaSettings,
    topic: str,
    event_filter: EventFilter,
    *,
    output: str = "pretty",
    limit: int | None = None,
    console: Console | None = None,
    notices: Console | None = None,
) -> int:
    """Print matching events from the end of the topic (or ``since``) on; returns how many printed.

    Records that do not decode are reported on ``notices`` (stderr by default), never among the
    events: a ``--format jsonl`` stream stays JSON for whatever reads it.
    """
    console = console or Console(highlight=False, soft_wrap=True)
    notices = notices or Console(stderr=True, highlight=False, soft_wrap=True)
    codec = codec_for(kafka)
    consumer = make_consumer(kafka, group_id=None)
    try:
        await consumer.start()
    except BaseException:
        await stop_consumer(consumer)  # else its client stays open: "Unclosed AIOKafkaConsumer"
        raise
    # aiokafka's group-less coordinator task must get to run once, or stopping right away (an
    # unknown topic) raises CancelledError out of consumer.stop().
    await asyncio.sleep(0)
    printed = 0
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise LookupError(f"topic {topic!r} does not exist on the broker")
        parts = [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(parts)
        await _position(consumer, parts, event_filter)
        while limit is None or printed < limit:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for msg in messages:
                    if not event_filter.keeps_key(msg.key) or not event_filter.keeps_time(msg.timestamp):
                        continue
                    try:
                        event = decode(codec, msg)
                    except DecodeError as exc:
                        notices.print(f"[red]not decodable:[/] {escape(str(exc))}")
                        continue
                    if not event_filter.keeps_type(type(event.record)):
                        continue
                    if output == "jsonl":
                        console.out(jsonl_line(event), highlight=False)
                    else:
                        console.print(pretty_line(event))
                    printed += 1
                    if limit is not None and printed >= limit:
                        return printed
    finally:
        await stop_consumer(consumer)
    return printed


async def _position(
    consumer: AIOKafkaConsumer, parts: list[TopicPartition], event_filter: EventFilter
) -> None:
    ends = await end_offsets(consumer, parts)  # not seek_to_end: Tansu under-reports the end
    starts = (
        ends if event_filter.since is None else await offsets_at(consumer, parts, event_filter.since, ends)
    )
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, starts[tp])
