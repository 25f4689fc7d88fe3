"""A record is sent again while the broker is away, and given up only for a fault of its own."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, RecordTooLargeError
from faust.exceptions import ProducerSendError

from infra.kafka import send_until_acknowledged

pytestmark = pytest.mark.asyncio


class _Broker:
    """Fails the first sends' acks with the given errors, then acknowledges."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.sends = 0

    async def send(self) -> str:
        """Returns once acknowledged, as aiokafka's ``send_and_wait`` does."""
        self.sends += 1
        if self.failures:
            raise self.failures.pop(0)
        return "offset 7"


def _wrapped(cause: BaseException) -> ProducerSendError:
    try:
        raise ProducerSendError("Error while sending") from cause
    except ProducerSendError as err:
        return err


async def test_an_outage_is_waited_out_and_the_record_sent_again() -> None:
    broker = _Broker(KafkaConnectionError(), _wrapped(KafkaConnectionError()))
    await send_until_acknowledged(broker.send, (0.0,), "test record")
    assert broker.sends == 3


async def test_a_record_the_broker_refuses_for_itself_is_raised_at_once() -> None:
    broker = _Broker(_wrapped(RecordTooLargeError()))
    with pytest.raises(ProducerSendError):
        await send_until_acknowledged(broker.send, (0.0,), "test record")
    assert broker.sends == 1


async def test_a_bug_is_not_retried() -> None:
    broker = _Broker(ValueError("not a broker error"))
    with pytest.raises(ValueError, match="not a broker error"):
        await send_until_acknowledged(broker.send, (0.0,), "test record")
    assert broker.sends == 1
