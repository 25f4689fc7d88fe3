"""aiokafka producer, consumer and admin factories built from Settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from infra import offset_gaps
from infra.backoff import retry_while
from infra.settings import KafkaSettings

log = logging.getLogger(__name__)


def _common(kafka: KafkaSettings) -> dict[str, Any]:
    if kafka.bootstrap is None:
        raise RuntimeError("VOICE_KAFKA__BOOTSTRAP is not set and no embedded broker was started")
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
    if kafka.sasl_mechanism is not None:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return options


def make_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer with acks=all; idempotence only where the broker supports it (a setting)."""
    options = _common(kafka) | {
        "acks": "all",
        "enable_idempotence": kafka.enable_idempotence,
        "linger_ms": 1,
        "request_timeout_ms": 15_000,
    }
    return AIOKafkaProducer(**(options | overrides))


def make_consumer(
    kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that commits explicitly, starts at the beginning, and waits briefly on fetch."""
    offset_gaps.install()  # the embedded broker can show a record after later ones (ADR 14)
    options = _common(kafka) | {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": kafka.consumer_fetch_max_wait_ms,
        "isolation_level": "read_uncommitted",
        "session_timeout_ms": kafka.consumer_session_timeout_ms,
        "heartbeat_interval_ms": kafka.consumer_heartbeat_interval_ms,
        "rebalance_timeout_ms": kafka.consumer_rebalance_timeout_ms,
        "max_poll_interval_ms": max(10_000, kafka.consumer_session_timeout_ms * 2),
    }
    return AIOKafkaConsumer(*topics, **(options | overrides))


def make_admin(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    """An admin client for topic bootstrap."""
    options = _common(kafka)
    options.pop("client_id")
    return AIOKafkaAdminClient(client_id=f"{kafka.client_id}-admin", **options)


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, without the CancelledError aiokafka can leak from its own tasks.

    aiokafka's fetcher cancels and awaits its pending tasks without catching their
    cancellation (aio-libs/aiokafka#647), so ``stop()`` can raise CancelledError though nothing
    cancelled the caller, and then skips closing its client. That leak is swallowed and the
    rest of the stop finished here; a cancellation aimed at the caller is still raised.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        if _being_cancelled():
            raise
        log.info("the Kafka consumer leaked an internal cancellation while stopping; finishing the stop")
        await _finish_stop(consumer)


async def start_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.start()``; a consumer that cannot start is stopped again before the error goes on.

    aiokafka leaves a consumer whose bootstrap failed open, and it prints "Unclosed
    AIOKafkaConsumer" under the caller's clear error message when it is collected.
    """
    try:
        await consumer.start()
    except BaseException:
        await stop_consumer(consumer)
        raise


async def start_producer(producer: AIOKafkaProducer) -> None:
    """``producer.start()``; a producer that cannot start is stopped again (see start_consumer)."""
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise


async def _finish_stop(consumer: AIOKafkaConsumer) -> None:
    # What stop() skipped: the fetcher's remaining tasks, then the client (connections and
    # its metadata task). Private attributes, read defensively: a newer aiokafka may differ.
    fetcher = getattr(consumer, "_fetcher", None)
    for task in list(getattr(fetcher, "_pending_tasks", ())):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    client = getattr(consumer, "_client", None)
    if client is not None:
        try:
            await client.close()
        except asyncio.CancelledError:
            if _being_cancelled():
                raise
    if _being_cancelled():
        raise asyncio.CancelledError


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


TOO_LARGE_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)
"""The record is larger than the producer or the broker accepts."""

RECORD_ERRORS = (*TOO_LARGE_ERRORS, CorruptRecordException, InvalidMessageError)
"""Broker errors that blame the record, not the broker: no retry can cure them."""


def is_transient(err: BaseException | None) -> bool:
    """A broker error that does not blame the record: the broker, the network or the set-up is
    at fault, and the same request may succeed later (retry it, and say so).

    Only errors that blame the record itself (too large, corrupt) are not: those belong in a
    dead letter. An expired batch, a refused authorisation or a producer whose sender died
    all count as transient here, so that an operator's fix, not a dead-letter queue, is what
    resolves them. Follows ``__cause__``, since Faust wraps send errors in ``ProducerSendError``.
    A non-Kafka error (a bug) is never transient.
    """
    for _ in range(5):
        if err is None:
            return False
        if isinstance(err, KafkaError):
            return not isinstance(err, RECORD_ERRORS)
        err = err.__cause__
    return False


async def send_until_acknowledged(
    deliver: Callable[[], Awaitable[object]], backoff_s: Sequence[float], what: str
) -> None:
    """``deliver`` a record (it returns once the broker has acknowledged it), delivering the same
    record again for as long as the broker is away (``is_transient``); an error that blames the
    record is raised.

    For records with derived ids: a copy that landed before its ack was lost is byte-identical
    to the original, which consumers treat as a duplicate.
    """

    def say(err: BaseException, wait: float) -> None:
        log.warning("%s not acknowledged (%r); sending it again in %.1f s", what, err, wait)

    await retry_while(deliver, is_transient, backoff_s, say)
