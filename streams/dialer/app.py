"""The dialer's Faust app: re-key its inputs by tenant, then step each tenant's dialer.

A separate Faust app (own group id) from the calls app. Three router agents copy the records
the dialer needs onto one internal topic keyed by tenant, so one tenant's agents, requests and
calls meet in one partition and both the agent and the tenant limit are held exactly:

* ``voice.dialer.requests.v1`` (PlaceCall, campaigns, CallDialled, CallDialFailed),
* ``voice.agents.events.v1`` (versions and archiving: limits, policies, windows),
* ``voice.calls.events.v1`` (status changes and ends: the live-call counts come from here;
  hang-ups requested: a call not answered yet is cancelled, ``cancellation``).

The ``dial`` agent steps the decider, publishes to ``voice.dialer.events.v1`` and dials; a
timer ticks every tenant with queued work or live attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import TopicPartition

from infra.deadletter import DeadLetterPublisher
from infra.eventlog.reading import end_offsets
from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.settings import Settings
from schemas.catalog import AGENT_EVENTS, CALL_EVENTS, DIALER_EVENTS, DIALER_REQUESTS
from schemas.codec import Codec, DecodeError
from schemas.dialer import CallDialFailed, CallDialled
from streams.dialer.call_log import logged_calls
from streams.dialer.config import DialerSettings
from streams.dialer.shell import ROUTED, DialerShell
from streams.faust_app import FaustSender, make_app
from streams.telephony.port import Telephony

log = logging.getLogger(__name__)


def create_dialer_app(
    settings: Settings, telephony: Telephony, dialer: DialerSettings | None = None
) -> faust.App:
    """Build the dialer worker app around a telephony adapter."""
    dialer = dialer or DialerSettings()
    kafka, streams = settings.kafka, settings.streams
    partitions = kafka.partitions_override or DIALER_REQUESTS.partitions
    state_dir = settings.data_dir / "dialer" / streams.worker_id
    app = make_app(
        dialer.app_id,
        settings,
        partitions=partitions,
        data_dir=state_dir,
        fetch_max_wait_ms=kafka.fetch_waits.dialer,
        table_standby_replicas=1,  # Faust's default, kept as it was
        broker_commit_every=100,
        producer_linger_ms=1,
    )
    codec = Codec.single_object()

    def raw(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw", **kw)

    by_tenant = raw(f"{dialer.app_id}-by-tenant", partitions=partitions, internal=True)
    dead_letters = DeadLetterPublisher(FaustSender(app), codec, consumer_group=dialer.app_id)
    ready = asyncio.Event()

    async def send(topic: str, key: bytes, value: bytes) -> None:
        await app.producer.send(topic, key, value, None, None, None)

    async def send_and_wait(topic: str, key: bytes, value: bytes) -> None:
        await app.producer.send_and_wait(topic, key, value, None, None, None)

    shell = DialerShell(
        codec,
        dialer.options(settings.twilio.caller_id),
        telephony,
        send=send,
        send_and_wait=send_and_wait,
        max_in_flight=dialer.max_dials_in_flight,
    )
    app.dialer_shell = shell  # type: ignore[attr-defined]  # for tests and the bench

    async def route(stream: faust.StreamT[bytes], wanted: tuple[type, ...]) -> AsyncIterator[None]:
        async for event in stream.events():
            message = event.message
            if message.value is None:
                continue
            try:
                kind = codec.record_type(message.value)
                tenant = getattr(codec.decode(message.value), "tenant_id", None) if kind in wanted else None
            except DecodeError as err:
                await dead_letters.publish(message, "undecodable", err)
                continue
            if tenant is not None:
                await by_tenant.send(key=tenant.encode(), value=message.value)
            yield None

    @app.agent(raw(DIALER_REQUESTS.name))
    async def route_requests(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for item in route(stream, ROUTED):
            yield item

    @app.agent(raw(AGENT_EVENTS.name))
    async def route_agents(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for item in route(stream, ROUTED):
            yield item

    @app.agent(raw(CALL_EVENTS.name))
    async def route_calls(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for item in route(stream, ROUTED):
            yield item

    @app.agent(by_tenant)
    async def dial(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        await ready.wait()
        async for event in stream.events():
            message = event.message
            if message.value is None:
                continue
            try:
                problem = await shell.handle(message.value)
            except Exception as err:  # a bug must not stop every other tenant
                log.exception("dialer input %s@%d failed", message.topic, message.offset)
                await dead_letters.publish(message, "handler_error", err)
                continue
            if problem is not None:
                await dead_letters.publish(message, problem.reason, ValueError(problem.detail))
            yield None

    @app.task  # type: ignore[untyped-decorator]
    async def rebuild() -> None:
        records = await read_all(settings, codec, (AGENT_EVENTS.name, DIALER_EVENTS.name))
        # The dial reports give live attempts their sids back, to cancel calls still ringing, and
        # the waits for the sid of a dial reported failed that Twilio may have placed.
        only = (CallDialled, CallDialFailed)
        records += await read_all(settings, codec, (DIALER_REQUESTS.name,), only=only)
        shell.rebuild(records, now=datetime.now(UTC))
        log.info("dialer state rebuilt from %d records", len(records))
        search = shell.call_log_search()
        if search is not None:
            # Read after the dialer's events: an attempt's CallReceived, if any, is written after
            # its start, and the worker that would have written it has stopped. Only the
            # partitions and the times it can be in are read (``call_log``).
            try:
                logged = await logged_calls(settings.kafka, codec, search)
            except LookupError as err:  # no call log to tell: they are reaped lost, as before
                log.warning("unreported attempts left to be reaped: %s", err)
            else:
                never = await shell.report_never_dialled(logged)
                if never:
                    log.warning("%d attempts stopped before their dial went out: not dialled", len(never))
        ready.set()

    @app.timer(interval=dialer.tick_interval_s)  # type: ignore[untyped-decorator]
    async def clock() -> None:
        if ready.is_set():
            await shell.tick(datetime.now(UTC))

    return app


async def read_all(
    settings: Settings, codec: Codec, topics: tuple[str, ...], only: tuple[type, ...] | None = None
) -> list[object]:
    """Every decodable record on ``topics`` (of the types ``only`` names, if given) up to their
    current end, in per-partition order."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await start_consumer(consumer)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        ends = await end_offsets(consumer, partitions)  # Tansu's ListOffsets under-reports
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        records: list[object] = []
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
            for tp, messages in batch.items():
                for message in messages:
                    # Undecodable records are the topic's own consumers' to dead-letter.
                    if message.value is not None:
                        with contextlib.suppress(DecodeError):
                            if only is None or codec.record_type(message.value) in only:
                                records.append(codec.decode(message.value))
                    if message.offset + 1 >= ends[tp]:
                        pending.discard(tp)
        return records
    finally:
        await stop_consumer(consumer)
