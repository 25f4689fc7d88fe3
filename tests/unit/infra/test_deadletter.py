"""Dead letters: one too large for the broker is kept without the original value, and says so;
any other refusal is raised, not blamed on the size."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiokafka.errors import CorruptRecordException, KafkaConnectionError, MessageSizeTooLargeError

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


class ProducerSendError(Exception):
    """As Faust wraps a send error: the broker's error is the ``__cause__``."""


def _wrapped(error: Exception) -> Exception:
    wrapper = ProducerSendError("send failed")
    wrapper.__cause__ = error
    return wrapper


class RefusesOnce(Broker):
    """Refuses the first send with ``error``, then takes what comes."""

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        error, self.error = self.error, None
        if error is not None:
            raise error
        await super().send_and_wait(topic, value, key)


@pytest.mark.parametrize(
    "error",
    [
        CorruptRecordException(),
        UnicodeEncodeError("utf-8", "x", 0, 1, "bad"),
        _wrapped(CorruptRecordException()),
    ],
    ids=["corrupt", "encoding-bug", "wrapped-corrupt"],
)
async def test_a_refusal_that_is_not_about_size_is_raised_not_retried_without_the_value(
    error: Exception,
) -> None:
    broker = RefusesOnce(error=error)
    with pytest.raises(type(error)):
        await DeadLetterPublisher(broker, CODEC, "g").publish(Message(), "undecodable", ValueError("bad"))
    assert broker.taken == []


class WrappingBroker(Broker):
    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        try:
            await super().send_and_wait(topic, value, key)
        except MessageSizeTooLargeError as err:
            raise ProducerSendError("send failed") from err


async def test_a_too_large_error_wrapped_by_the_producer_is_recognised() -> None:
    broker = WrappingBroker(limit=1_000)
    await DeadLetterPublisher(broker, CODEC, "g").publish(Message(), "handler_error", ValueError("bad"))
    (letter,) = broker.taken
    assert letter.value == b""
    assert "2000 bytes left out" in letter.error_message
