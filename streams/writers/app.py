"""The Faust app of the agent and knowledge writers: one agent per command topic, state in tables.

Commands are keyed by aggregate id, so one partition (and one worker) serialises an aggregate's
commands. Each aggregate's folded state lives in a changelog-backed table; a table miss folds
the aggregate's events from the events topic (ADR 0009).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner

from infra.backoff import retry_while
from infra.deadletter import DeadLetterPublisher, RecordDecodeError, decode_record
from infra.eventlog.reading import EventFilter, read_range
from infra.kafka import is_transient
from infra.settings import KafkaSettings, Settings
from schemas.codec import Codec, DecodeError
from streams.faust_app import FaustSender, make_app
from streams.writers.shell import CommandHandler, EmitEvent, StateTooLargeError
from streams.writers.spec import WriterSpec, agent_spec, aggregate_id, knowledge_spec

log = logging.getLogger(__name__)

DEFAULT_APP_ID = "voice-writers"

AfterEmit = Callable[[str], None]


def create_app(
    settings: Settings, *, app_id: str = DEFAULT_APP_ID, after_emit: AfterEmit | None = None
) -> faust.App:
    """Build the writers' worker app; after_emit is a test hook run between event send and table update."""
    kafka, streams = settings.kafka, settings.streams
    data_dir = settings.data_dir / "writers" / app_id / streams.worker_id
    agents, knowledge = agent_spec(), knowledge_spec(settings.api.blob_dir or settings.data_dir / "blobs")
    partitions = kafka.partitions_override or agents.commands.partitions
    app = make_app(
        app_id,
        settings,
        partitions=partitions,
        data_dir=data_dir,
        fetch_max_wait_ms=kafka.fetch_waits.writers,
    )
    codec = Codec.single_object()
    dead_letters = DeadLetterPublisher(FaustSender(app), codec, consumer_group=app_id)
    for spec in (agents, knowledge):
        _add_writer(app, spec, kafka, codec, dead_letters, after_emit)
    return app


def state_table(spec: WriterSpec[Any]) -> str:
    """The name of the table holding each of ``spec``'s aggregates' folded state."""
    return f"{spec.name}-state"


def state_changelog(app_id: str, spec: WriterSpec[Any]) -> str:
    """The changelog topic Faust backs that table with (``{app_id}-{table}-changelog``)."""
    return f"{app_id}-{state_table(spec)}-changelog"


def _add_writer(
    app: faust.App,
    spec: WriterSpec[Any],
    kafka: KafkaSettings,
    codec: Codec,
    dead_letters: DeadLetterPublisher,
    after_emit: AfterEmit | None,
) -> None:
    commands = app.topic(spec.commands.name, key_serializer="raw", value_serializer="raw")
    events = app.topic(spec.events.name, key_serializer="raw", value_serializer="raw")
    states = app.Table(
        state_table(spec),
        default=None,
        partitions=kafka.partitions_override or spec.commands.partitions,
        key_type=bytes,  # bytes in and out, also when the table recovers from its changelog
        value_type=bytes,
    )

    async def history(aggregate: str) -> list[Any]:
        return await events_in_log(kafka, spec, aggregate)

    handler = CommandHandler(spec, codec, history)

    async def emit(key: bytes, value: bytes) -> None:
        # Wait for the broker: the table must never run ahead of the log.
        await (await events.send(key=key, value=value))

    async def write(message: Any) -> None:
        try:
            command = decode_record(codec, message)
        except RecordDecodeError as err:
            await dead_letters.publish(message, "undecodable", err)
            return
        if not isinstance(command, spec.commands.record_types):
            await dead_letters.publish(message, "unknown_type", TypeError(type(command).__name__))
            return
        key = aggregate_id(command, spec).encode()
        if message.key != key:
            # Its state would land in another partition's changelog than its aggregate's.
            await dead_letters.publish(message, "wrong_key", ValueError("not keyed by its aggregate id"))
            return
        try:
            stored = await _handle_through_outages(handler, states, key, command, emit, after_emit)
        except StateTooLargeError as err:
            # Refused before any event was sent: the table and the log still agree. Storing the
            # state would have crashed the producer, and the worker with it, on every restart.
            log.error("%s command %s@%d dead-lettered: %s", spec.name, message.topic, message.offset, err)
            await dead_letters.publish(message, "state_too_large", err)
            return
        except Exception as err:  # one bad command must not stop the writer
            log.exception("%s command %s@%d failed", spec.name, message.topic, message.offset)
            # Some of its events may be in the log already: fold the aggregate from there next time.
            states.pop(key, None)
            await app.producer.flush()
            await dead_letters.publish(message, "handler_error", err)
            return
        if stored is not None:
            states[key] = stored
            # On the broker before the command's offset can be committed: a table left behind
            # the log would decide the aggregate's next command with a seq already taken.
            await app.producer.flush()

    @app.agent(commands, name=f"writers.{spec.name}")
    async def decide(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            await write(event.message)
            yield None


BROKER_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Waits between attempts at a command the broker could not serve; the last one repeats."""


async def _handle_through_outages(
    handler: CommandHandler[Any],
    states: Any,
    key: bytes,
    command: Any,
    emit: EmitEvent,
    after_emit: AfterEmit | None,
) -> bytes | None:
    """``handler.handle``, retried for as long as the broker is away.

    A broker error (reading the aggregate's history on a table miss, or emitting) says nothing
    about the command: dead-lettering it would drop a valid request. The command waits at the
    head of its partition instead, and is decided afresh from the log each time, since some
    of its events may have landed before the error.
    """

    def forget_and_say(err: BaseException, wait: float) -> None:
        states.pop(key, None)
        log.warning(
            "%s for %s: the broker is unavailable (%s); retrying in %.1fs",
            type(command).__name__,
            key.decode(errors="replace"),
            err,
            wait,
        )

    # A bad command or a refusal no retry can cure is raised: the caller dead-letters it.
    return await retry_while(
        lambda: handler.handle(states.get(key), command, emit, after_emit),
        is_transient,
        BROKER_RETRY_S,
        forget_and_say,
    )


# The partitioner the writers' producer sends events with. ``emit`` sends through a Faust
# topic with no partition, so faust's aiokafka Producer hands the key to an AIOKafkaProducer
# built with ``partitioner=self.partitioner``; that is ``app.conf.producer_partitioner``, which
# make_app leaves unset, so faust's Producer.__post_init__ falls back to aiokafka's
# DefaultPartitioner (murmur2 of the key bytes, as the Java client). Checked by
# tests/unit/streams/test_writers_partition.py.
_PARTITIONER = DefaultPartitioner()


def event_partition(aggregate: str, partitions: Iterable[int]) -> int:
    """The partition of its events topic that ``aggregate``'s events are sent to.

    The producer's key is ``aggregate.encode()`` (see ``emit``); aiokafka passes the topic's
    partition numbers as ``list()`` of a set of small ints, i.e. in ascending order, as here.
    """
    numbers = sorted(partitions)
    return int(_PARTITIONER(aggregate.encode(), numbers, numbers))


async def events_in_log(kafka: KafkaSettings, spec: WriterSpec[Any], aggregate: str) -> list[Any]:
    """Every event of ``aggregate`` in its events topic, by seq (the table-miss bootstrap).

    Events are keyed by their aggregate id, so only the partition that key hashes to is read.
    (Like every keyed reader, this assumes the events topic never gains partitions.)
    """
    found = [
        event.record
        async for event in read_range(
            kafka,
            spec.events.name,
            EventFilter(call_id=aggregate),  # the aggregate's key
            on_undecodable=_skip_undecodable,
            codec=Codec.single_object(),  # what the writers encode their events with (create_app)
            partitions=lambda numbers: [event_partition(aggregate, numbers)],
        )
        if isinstance(event.record, spec.events.record_types)
    ]
    # Re-emitted duplicates (a crash between send and table update) stay in: fold_log skips them.
    return sorted(found, key=lambda record: int(record.seq))


def _skip_undecodable(err: DecodeError) -> None:
    log.warning("skipping an undecodable event while folding the log: %s", err)
