"""The Faust app: the calls agent (the state machine's shell), its clock, and dead letters.

Run it with ``python -m streams`` (our entry point) or ``faust -A streams.app worker``; the app
is built on first access from ``Settings()``, never at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import faust
from faust.tables.base import Collection

from infra.deadletter import DeadLetterPublisher
from infra.kafka import make_consumer, send_until_acknowledged, start_consumer, stop_consumer
from infra.settings import Settings
from schemas.calls import CallInput
from schemas.catalog import CALL_EVENTS, CALL_INPUTS
from schemas.codec import Codec
from schemas.ids import CallId
from streams.calls.call_keys import CallKeys, Entry
from streams.calls.in_order import InOrderAcks, Ticket
from streams.calls.serial import SerialPerKey
from streams.calls.shell import CallInputHandler, clock_tick, due_tick
from streams.calls.snapshot import load
from streams.calls.state import CallLimits, CallState
from streams.faust_app import FaustSender, make_app
from streams.sessions.directory import AgentDirectory
from streams.sessions.manager import SessionManager
from streams.sessions.tools import ToolRunner
from streams.sessions.wiring import knowledge_search, live_connector, webhook_tools

log = logging.getLogger(__name__)

EMIT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0)
"""Waits before sending a call event again after the broker did not take it; the last repeats."""

AfterEmit = Callable[[CallId], None]


def create_app(settings: Settings, *, after_emit: AfterEmit | None = None) -> faust.App:
    """Build the worker app; after_emit is a test hook run between event send and table update."""
    kafka, streams = settings.kafka, settings.streams
    partitions = kafka.partitions_override or CALL_INPUTS.partitions
    state_dir = streams.state_dir or settings.data_dir / "streams" / streams.worker_id
    app = make_app(
        streams.app_id,
        settings,
        partitions=partitions,
        data_dir=state_dir,
        fetch_max_wait_ms=streams.fetch_max_wait_ms,  # on every call's path
    )
    codec = Codec.single_object()
    inputs = app.topic(CALL_INPUTS.name, key_serializer="raw", value_serializer="raw")
    events = app.topic(CALL_EVENTS.name, key_serializer="raw", value_serializer="raw")
    calls = app.Table(
        "call-state",
        default=None,
        partitions=partitions,
        # bytes in and out, also when the table recovers from its changelog (JSON otherwise)
        key_type=bytes,
        value_type=bytes,
        # Written from each call's own job, outside Faust's current-event context: the producer's
        # partitioner puts a key in the partition its inputs come from (both keyed by call id).
        use_partitioner=True,
    )
    retention = timedelta(seconds=streams.ended_call_retention_s)
    handler = CallInputHandler(
        codec,
        CallLimits(
            max_duration_s=streams.default_max_duration_s,
            silence_timeout_s=streams.default_silence_timeout_s,
        ),
        ended_retention=retention,
    )
    dead_letters = DeadLetterPublisher(FaustSender(app), codec, consumer_group=streams.app_id)

    async def emit(key: bytes, value: bytes) -> None:
        # Wait for the broker: the table must never run ahead of the log. Only this record's
        # ack is awaited; a whole-producer flush would also wait for every other call's facts
        # and changelog writes in flight, which under load held each input up for seconds.
        # An outage is waited out (ADR 12): giving up here would decide the call's next input
        # from the old state and reuse this event's seq and id for a different event.
        async def deliver() -> None:
            await (await events.send(key=key, value=value))

        await send_until_acknowledged(deliver, EMIT_BACKOFF_S, f"call event for {key.decode()}")

    sessions = _sessions(app, settings, codec, inputs) if streams.sessions_enabled else None

    keys = CallKeys()  # the clock's work lists: live calls to tick, long-ended calls to forget

    def on_state(state: CallState) -> None:
        if sessions is not None:
            sessions.ensure(state)

    serial = SerialPerKey(limit=streams.inputs_in_flight)
    acks: InOrderAcks[faust.EventT[bytes]] = InOrderAcks()

    async def dead_letter(message: faust.types.Message, reason: str, err: BaseException) -> None:
        # Through an outage too: the input is acked only once its dead letter is written.
        await send_until_acknowledged(
            lambda: dead_letters.publish(message, reason, err),
            EMIT_BACKOFF_S,
            f"dead letter for {message.topic}@{message.offset}",
        )

    async def apply(event: faust.EventT[bytes], key: bytes, value: bytes) -> None:
        message = event.message
        try:
            outcome = await handler.handle(calls.get(key), value, message.offset, emit, after_emit)
        except Exception as err:  # a bug must not stop every other call
            log.exception("call input %s@%d failed", message.topic, message.offset)
            await dead_letter(message, "handler_error", err)
            return
        if outcome.error is not None:
            await dead_letter(message, "undecodable", ValueError(outcome.error))
        elif outcome.conflict is not None:
            log.warning("call input %s@%d: %s", message.topic, message.offset, outcome.conflict)
            await dead_letter(message, "rejected_by_handler", ValueError(outcome.conflict))
        elif outcome.forget:
            del calls[key]  # a tombstone in the changelog: recovery forgets it too
            keys.forgotten(key)
        elif outcome.snapshot is not None:
            calls[key] = outcome.snapshot
            state = load(outcome.snapshot).state
            keys.stored(key, state.ended_since)
            on_state(state)

    @app.agent(inputs)
    async def call_inputs(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        # Acked by hand once applied, in read order per partition (InOrderAcks): Faust commits
        # an offset only past inputs that are applied, and a rebalance waits for those in
        # flight (ADR 13).
        manual = cast(faust.Stream[bytes], stream).noack()
        topic = inputs.get_topic_name()
        async for event in manual.events():
            # The table writes by the producer's partitioner, so Faust no longer checks that
            # its changelog has as many partitions as the inputs; this restores that check.
            cast(Collection, calls)._verify_source_topic_partitions(topic)
            ticket = acks.taken(event.message.tp, event)

            async def job(event: faust.EventT[bytes] = event, ticket: Ticket[Any] = ticket) -> None:
                message = event.message
                try:
                    if not message.key or message.value is None:
                        await dead_letter(message, "undecodable", ValueError("missing key or value"))
                    else:
                        await apply(event, message.key, message.value)
                except Exception as err:
                    # Not applied and not dead-lettered: acking it would lose it, and the call's
                    # next input would be decided from a state that misses it. Stop the worker;
                    # its successor reads the input again (nothing after it was committed).
                    log.critical("call input %s@%d not applied; stopping", message.topic, message.offset)
                    await app.crash(err)
                    return
                for applied in acks.done(ticket):
                    await manual.ack(applied)

            await serial.submit(event.message.key or b"", job)  # this call's inputs in order
            yield None

    def owned_partitions() -> set[int]:
        """The call partitions assigned to this worker now.

        The table keeps the calls of partitions this worker has lost: Faust's memory store drops
        only keys it recovered from the changelog, not those the agent wrote. Ticking them would
        restart their sessions here, taking each bridge back from the call's new owner.
        """
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == inputs.get_topic_name()}

    def partition_of(key: bytes) -> int:
        return app.producer.key_partition(inputs.get_topic_name(), key).partition

    def scan() -> Iterable[Entry]:
        owned = owned_partitions()
        for key, stored in list(calls.items()):
            if stored is not None and partition_of(key) in owned:
                yield key, load(stored).state.ended_since

    async def on_rebalance(app: faust.App, partitions: Any, **kwargs: Any) -> None:
        keys.rebalanced()  # the next tick rescans, and the scan keeps only owned partitions

    app.on_partitions_revoked.connect(on_rebalance)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_rebalance)  # type: ignore[arg-type]

    @app.timer(interval=streams.tick_interval_s)  # type: ignore[untyped-decorator]
    async def clock() -> None:
        now = datetime.now(UTC)
        for key in keys.to_tick(scan):
            stored = calls.get(key)
            if stored is None:
                keys.forgotten(key)
                continue
            snapshot = load(stored)
            state = snapshot.state
            if not state.live:  # an update the agent's report missed; the rescan caught it
                keys.stored(key, state.ended_since)
                continue
            tick = due_tick(state, snapshot.limits, now)
            if tick is not None:
                await inputs.send(key=key, value=codec.encode(tick))
            on_state(state)  # failover: the new owner of a partition resumes its calls here
        for key in keys.to_forget(now, retention):
            stored = calls.get(key)
            if stored is not None:  # the agent deletes it when the tick comes round, in order
                await inputs.send(key=key, value=codec.encode(clock_tick(load(stored).state, now)))

    return app


class _TopicSink:
    """Session facts go to the call inputs topic, keyed by call, without waiting for acks."""

    def __init__(self, topic: faust.TopicT, codec: Codec) -> None:
        self._topic = topic
        self._codec = codec

    async def publish(self, record: CallInput, *, wait: bool = False) -> None:
        sent = await self._topic.send(key=record.call_id.encode(), value=self._codec.encode(record))
        if wait:
            await sent
        else:  # not awaited, but a fact the broker never took is not lost without a word
            name, call_id = type(record).__name__, record.call_id
            ack = asyncio.ensure_future(sent)  # Faust's FutureMessage is a Future: returned as is
            ack.add_done_callback(lambda done: _log_unsent(done, name, call_id))


def _log_unsent(done: asyncio.Future[Any], name: str, call_id: str) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("session fact %s for call %s was not written: %r", name, call_id, done.exception())


def _sessions(app: faust.App, settings: Settings, codec: Codec, inputs: faust.TopicT) -> SessionManager:
    directory = AgentDirectory()
    search, engine = knowledge_search(settings)
    hooks = webhook_tools(settings)
    manager = SessionManager(
        directory=directory,
        connect_live=live_connector(settings),
        facts=_TopicSink(inputs, codec),
        tools=ToolRunner(search, timeout_s=settings.streams.tool_timeout_s, webhooks=hooks),
        worker_id=settings.streams.worker_id,
        prewarm=settings.streams.prewarm_sessions,
        live_setup_timeout_s=settings.streams.live_setup_timeout_s,
    )

    @app.task  # type: ignore[untyped-decorator]
    async def follow_agents() -> None:
        wait = settings.kafka.fetch_waits.agent_directory
        consumer = make_consumer(settings.kafka, group_id=None, fetch_max_wait_ms=wait)
        await start_consumer(consumer)
        try:
            await directory.follow(consumer, codec)
        finally:
            await stop_consumer(consumer)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        # Another worker may own these calls now; the clock restarts the ones still ours.
        await manager.stop_all()

    @app.service
    class _Shutdown(faust.Service):
        async def on_stop(self) -> None:
            await manager.stop_all()
            await hooks.client.aclose()
            if engine is not None:
                await engine.dispose()

    return manager


_app: faust.App | None = None


def __getattr__(name: str) -> Any:
    # `faust -A streams.app` looks up `app`; build it only then, from the environment.
    global _app
    if name == "app":
        if _app is None:
            _app = create_app(Settings())
        return _app
    raise AttributeError(name)
