"""Dead letters: one too large for the broker is kept without the original value, and says so."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from infra.deadletter import DeadLetterPublisher
from schemas.codec import Codec
from schemas.deadletter import DeadLetter

CODEC = Codec.single_object()


@dataclass
class Message:
    topic: str = "voice.calls.events.v1"
    partition: int = 3
    offset: int = 41
    key: bytes | None = b"call-1"
    value: bytes | None = b"x" * 2_000


class Broker:
    """Refuses values over ``limit`` bytes as too large, or everything with ``error``."""

    def __init__(self, limit: int = 1_000_000, error: Exception | None = None) -> None:
        self.limit = limit
        self.error = error
        self.taken: list[DeadLetter] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self.error is not None:
            raise self.error
        if len(value) > self.limit:
            raise MessageSizeTooLargeError()
        self.taken.append(CODEC.decode_as(value, DeadLetter))


async def test_a_dead_letter_that_fits_keeps_the_original_value() -> None:
    broker = Broker()
    await DeadLetterPublisher(broker, CODEC, "g").publish(Message(), "undecodable", ValueError("bad"))
    (letter,) = broker.taken
    assert letter.value == b"x" * 2_000


async def test_one_too_large_is_kept_without_the_value_and_says_why() -> None:
    broker = Broker(limit=1_000)
    await DeadLetterPublisher(broker, CODEC, "g").publish(Message(), "handler_error", ValueError("bad"))
    (letter,) = broker.taken
    assert (letter.value, letter.offset, letter.reason) == (b"", 41, "handler_error")
    assert "2000 bytes left out" in letter.error_message


async def test_an_outage_is_not_mistaken_for_a_size_problem() -> None:
    broker = Broker(error=KafkaConnectionError())
    with pytest.raises(KafkaConnectionError):
        await DeadLetterPublisher(broker, CODEC, "g").publish(Message(), "undecodable", ValueError("bad"))
    assert broker.taken == []
