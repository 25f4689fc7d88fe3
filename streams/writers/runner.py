"""A plain aiokafka loop running the agent or knowledge decider (the Faust agents can replace it).

State is rebuilt at start by folding the whole events topic, then every command is decided,
its events are produced (keyed by aggregate) and the command offset is committed. One instance
per writer: partition moves between instances are the Faust version's job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlparse

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from infra.deadletter import DeadLetterPublisher, RecordDecodeError, decode_record
from infra.kafka import make_consumer
from infra.settings import KafkaSettings
from schemas.agents import AgentCommand
from schemas.catalog import AGENT_COMMANDS, AGENT_EVENTS, KNOWLEDGE_COMMANDS, KNOWLEDGE_EVENTS, TopicSpec
from schemas.codec import Codec
from schemas.knowledge import AddDocument, KnowledgeCommand, KnowledgeEvent
from schemas.registry import Record
from streams.writers import agent_writer, knowledge_writer
from streams.writers.extract import UnsupportedContentError, extract_text

log = logging.getLogger(__name__)
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class WriterSpec(Generic[S]):
    """One decider and its topics, with the shell's per-command preparation."""

    name: str
    commands: TopicSpec
    events: TopicSpec
    initial: Callable[[Any], S]
    evolve: Callable[[S, Any], S]
    decide: Callable[[S, Any], list[Any]]


def agent_spec() -> WriterSpec[agent_writer.AgentState]:
    return WriterSpec(
        "agents",
        AGENT_COMMANDS,
        AGENT_EVENTS,
        agent_writer.initial_state,
        agent_writer.evolve,
        agent_writer.decide,
    )


def knowledge_spec(blob_dir: Path) -> WriterSpec[knowledge_writer.KnowledgeState]:
    def decide(state: knowledge_writer.KnowledgeState, command: KnowledgeCommand) -> list[KnowledgeEvent]:
        text = read_document(command, blob_dir) if isinstance(command, AddDocument) else None
        return knowledge_writer.decide(state, command, text)

    return WriterSpec(
        "knowledge",
        KNOWLEDGE_COMMANDS,
        KNOWLEDGE_EVENTS,
        knowledge_writer.initial_state,
        knowledge_writer.evolve,
        decide,
    )


def read_document(command: AddDocument, blob_dir: Path) -> knowledge_writer.DocumentText:
    """The document's text, inline or from a file:// URI inside the blob directory."""
    try:
        if command.content is not None:
            raw = command.content
        elif command.content_uri is not None:
            raw = _read_blob(command.content_uri, blob_dir)
        else:
            return knowledge_writer.DocumentText(error="neither content nor content_uri")
        return knowledge_writer.DocumentText(text=extract_text(command.content_type, raw))
    except (OSError, UnsupportedContentError, ValueError) as err:
        return knowledge_writer.DocumentText(error=str(err))


def _read_blob(uri: str, blob_dir: Path) -> str:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"unsupported content_uri scheme {parsed.scheme!r}")
    path = Path(unquote(parsed.path)).resolve()
    if not path.is_relative_to(blob_dir.resolve()):
        raise ValueError("content_uri is outside the blob directory")
    return path.read_text(encoding="utf-8", errors="replace")


def aggregate_id(record: Record, spec: WriterSpec[Any]) -> str:
    value = spec.commands.key_of(record)
    if not isinstance(value, str):
        raise TypeError("commands are keyed by a text aggregate id")
    return value


class Writer(Generic[S]):
    """Holds the folded state of every aggregate and turns commands into produced events."""

    def __init__(self, spec: WriterSpec[S], producer: AIOKafkaProducer, codec: Codec) -> None:
        self.spec = spec
        self._producer = producer
        self.codec = codec
        self.states: dict[str, S] = {}

    def state_of(self, aggregate: str) -> S:
        return self.states.get(aggregate) or self.spec.initial(aggregate)

    def absorb(self, aggregate: str, event: Any) -> None:
        self.states[aggregate] = self.spec.evolve(self.state_of(aggregate), event)

    async def handle(self, command: AgentCommand | KnowledgeCommand) -> list[Any]:
        aggregate = aggregate_id(command, self.spec)
        events = self.spec.decide(self.state_of(aggregate), command)
        key = aggregate.encode()
        for event in events:
            await self._producer.send_and_wait(self.spec.events.name, self.codec.encode(event), key)
            self.absorb(aggregate, event)
        return events


async def rebuild(writer: Writer[Any], kafka: KafkaSettings) -> int:
    """Fold the whole events topic into the writer's state; returns the number of events."""
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    count = 0
    try:
        partitions = consumer.partitions_for_topic(writer.spec.events.name) or set()
        tps = [TopicPartition(writer.spec.events.name, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for message in records:
                    event = writer.codec.decode(message.value) if message.value else None
                    if event is not None and isinstance(event, writer.spec.events.record_types):
                        writer.absorb(aggregate_id(event, writer.spec), event)
                        count += 1
    finally:
        await consumer.stop()
    return count


async def run_writer(
    spec: WriterSpec[Any],
    kafka: KafkaSettings,
    producer: AIOKafkaProducer,
    *,
    codec: Codec,
    stop: asyncio.Event | None = None,
    group_id: str | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Rebuild state, then decide commands until ``stop`` is set."""
    stop = stop or asyncio.Event()
    writer: Writer[Any] = Writer(spec, producer, codec)
    await rebuild(writer, kafka)
    group = group_id or f"writer.{spec.name}"
    dead_letters = DeadLetterPublisher(producer, codec, group)
    consumer = make_consumer(kafka, group_id=group)
    consumer.subscribe([spec.commands.name], listener=_SignalAssigned(ready or asyncio.Event()))
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=100)
            for tp, records in batches.items():
                for message in records:
                    await _handle_message(writer, message, dead_letters)
                await consumer.commit({tp: records[-1].offset + 1})
    finally:
        await consumer.stop()


class _SignalAssigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Sets ``ready`` once the group has given this writer its partitions."""

    def __init__(self, ready: asyncio.Event) -> None:
        self._ready = ready

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._ready.set()


async def _handle_message(writer: Writer[Any], message: Any, dead_letters: DeadLetterPublisher) -> None:
    try:
        command = decode_record(writer.codec, message)
    except RecordDecodeError as err:
        await dead_letters.publish(message, "undecodable", err)
        return
    if not isinstance(command, writer.spec.commands.record_types):
        await dead_letters.publish(message, "unknown_type", TypeError(type(command).__name__))
        return
    try:
        await writer.handle(command)
    except Exception as err:  # one bad command must not stop the writer
        await dead_letters.publish(message, "handler_error", err)
