"""Dead letters: records that cannot be decoded or applied go to voice.deadletter.v1 with the reason."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Protocol

from infra.kafka import TOO_LARGE_ERRORS
from schemas.catalog import DEADLETTER
from schemas.codec import Codec, DecodeError
from schemas.deadletter import DeadLetter
from schemas.registry import Record

log = logging.getLogger(__name__)


class ConsumedRecord(Protocol):
    """The parts of an aiokafka ConsumerRecord we need (a fake can provide them too)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Sender(Protocol):
    """What a dead-letter publisher needs from a producer."""

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> object: ...


class RecordDecodeError(Exception):
    """A consumed record that does not decode, with where it came from."""

    def __init__(self, topic: str, partition: int, offset: int, reason: str) -> None:
        super().__init__(f"{topic}[{partition}]@{offset}: {reason}")
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.reason = reason


def decode_record(codec: Codec, message: ConsumedRecord) -> Record:
    """Decode a consumed value, or raise RecordDecodeError carrying topic, partition and offset."""
    if message.value is None:
        raise RecordDecodeError(message.topic, message.partition, message.offset, "empty value (tombstone)")
    try:
        return codec.decode(message.value)
    except DecodeError as err:
        raise RecordDecodeError(message.topic, message.partition, message.offset, str(err)) from err


_MAX_ERROR_CHARS = 4000


class DeadLetterPublisher:
    """Sends records a consumer gave up on to the dead-letter topic, keeping the original key."""

    def __init__(self, producer: Sender, codec: Codec, consumer_group: str) -> None:
        self._producer = producer
        self._codec = codec
        self._group = consumer_group

    async def publish(self, message: ConsumedRecord, reason: str, error: BaseException) -> DeadLetter:
        letter = DeadLetter(
            original_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value or b"",
            reason=reason,
            error_type=type(error).__name__,
            error_message=str(error)[:_MAX_ERROR_CHARS],
            failed_at=datetime.now(UTC),
            consumer_group=self._group,
        )
        try:
            await self._producer.send_and_wait(DEADLETTER.name, self._codec.encode(letter), message.key)
        except Exception as err:
            if not _too_large(err) or not letter.value:
                raise  # an outage, a corrupt record or a bug: leaving the value out cures none
            # The original plus our envelope is over the broker's limit: keep the letter and its
            # coordinates (the original stays in its topic), leave the value out, and say so.
            letter = dataclasses.replace(
                letter,
                value=b"",
                error_message=f"{letter.error_message} [original value of {len(letter.value)} bytes "
                f"left out: the dead letter was too large ({type(err).__name__})]"[:_MAX_ERROR_CHARS],
            )
            await self._producer.send_and_wait(DEADLETTER.name, self._codec.encode(letter), message.key)
        log.warning(
            "dead-lettered %s[%d]@%d (%s): %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
            error,
        )
        return letter


def _too_large(err: BaseException | None) -> bool:
    """The broker or producer refused the record for its size (Faust wraps it: see ``__cause__``)."""
    for _ in range(5):
        if err is None:
            return False
        if isinstance(err, TOO_LARGE_ERRORS):
            return True
        err = err.__cause__
    return False


async def decode_or_dead_letter(
    codec: Codec, message: ConsumedRecord, dead_letters: DeadLetterPublisher
) -> Record | None:
    """The decoded record, or None after sending the undecodable one to the dead-letter topic."""
    try:
        return decode_record(codec, message)
    except RecordDecodeError as err:
        await dead_letters.publish(message, "undecodable", err)
        return None
