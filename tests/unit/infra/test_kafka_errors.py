"""Which broker errors are worth retrying: an outage or a broken set-up, yes; a bad record, no."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)
from faust.exceptions import ProducerSendError

from infra.kafka import is_transient


def _wrapped(cause: BaseException) -> ProducerSendError:
    try:
        raise ProducerSendError("Error while sending") from cause
    except ProducerSendError as err:
        return err


@pytest.mark.parametrize(
    "error",
    [
        KafkaConnectionError(),
        KafkaTimeoutError(),
        NotLeaderForPartitionError(),
        _wrapped(KafkaConnectionError()),
        TopicAuthorizationFailedError(),  # an operator's fix, not a dead letter, resolves it
    ],
)
def test_an_outage_or_a_broken_set_up_is_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        MessageSizeTooLargeError(),
        RecordTooLargeError(),
        _wrapped(MessageSizeTooLargeError()),
        ValueError("bad"),
        _wrapped(ValueError()),
        None,
    ],
)
def test_a_record_the_broker_refuses_or_a_bug_is_not(error: BaseException | None) -> None:
    assert not is_transient(error)
