"""The call-events runner's offset book: a partition resumes at its oldest unfinished job."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError
from aiokafka.structs import OffsetAndMetadata

from schemas.catalog import POSTCALL_EVENTS
from schemas.dialer import CallSummarized
from schemas.ids import AgentId, CallId, CorrelationId, EventId, TenantId
from streams import call_events_runner as runner
from streams.call_events_runner import OffsetBook
from tests.support.call_stream import T0

P0 = TopicPartition("voice.calls.events.v1", 0)
P1 = TopicPartition("voice.calls.events.v1", 1)


def given(*events: tuple[TopicPartition, int, int]) -> OffsetBook:
    """A book that has read each (partition, offset, jobs started for it), in order."""
    book = OffsetBook()
    for tp, offset, jobs in events:
        book.read(tp, offset)
        for _ in range(jobs):
            book.started(tp, offset)
    return book


def test_with_no_job_running_a_partition_resumes_after_its_last_read_event() -> None:
    assert given((P0, 4, 0), (P0, 5, 0), (P0, 6, 0)).committable() == {P0: 7}


def test_an_unfinished_job_holds_its_partition_at_its_event() -> None:
    book = given((P0, 4, 1), (P0, 5, 1), (P0, 6, 0), (P1, 9, 0))
    assert book.committable() == {P0: 4, P1: 10}
    book.finished(P0, 5)
    assert book.committable() == {P0: 4, P1: 10}
    book.finished(P0, 4)
    assert book.committable() == {P0: 7, P1: 10}


def test_an_event_with_two_jobs_is_held_until_both_finish() -> None:
    book = given((P0, 3, 2))
    book.finished(P0, 3)
    assert book.committable() == {P0: 3}
    book.finished(P0, 3)
    assert book.committable() == {P0: 4}


def test_nothing_is_committable_before_anything_is_read() -> None:
    assert OffsetBook().committable() == {}


class _FlakyProducer:
    """Refuses the first ``failures`` writes as a broker that is away would."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[tuple[str, bytes, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError()
        self.written.append((topic, value, key))


class _Consumer:
    """Commits into a list; refuses with ``error`` while it is set."""

    def __init__(self, assigned: set[TopicPartition], error: Exception | None = None) -> None:
        self.assigned = assigned
        self.error = error
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.error is not None:
            raise self.error
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})


def _summary() -> CallSummarized:
    return CallSummarized(
        tenant_id=TenantId("t"),
        call_id=CallId("c1"),
        seq=1,
        event_id=EventId("e1"),
        occurred_at=T0,
        correlation_id=CorrelationId("c1"),
        agent_id=AgentId("a"),
        summary="s",
        model="m",
    )


async def test_a_post_call_event_is_written_once_the_broker_is_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "PUBLISH_BACKOFF_S", (0.001,))
    producer = _FlakyProducer(failures=3)
    await runner._send_until_taken(producer, b"value", _summary())
    assert producer.written == [(POSTCALL_EVENTS.name, b"value", b"c1")]


async def test_offsets_of_revoked_partitions_are_not_committed_and_commit_errors_do_not_stop_the_runner() -> (
    None
):
    events = runner.CallEventsRunner.__new__(runner.CallEventsRunner)
    events._book = given((P0, 4, 0), (P1, 9, 0))
    consumer = _Consumer({P0}, error=CommitFailedError("rebalanced"))
    await events._commit(consumer)  # logged, not raised
    consumer.error = None
    await events._commit(consumer)
    assert consumer.commits == [{P0: 5}]


async def test_a_partition_revoked_and_assigned_again_commits_nothing_before_it_is_read_again() -> None:
    # Meanwhile another worker may have committed P0 further on: our old position would undo it.
    events = runner.CallEventsRunner.__new__(runner.CallEventsRunner)
    events._book = given((P0, 4, 0), (P1, 9, 0))
    listener = runner._ResetOnRebalance(events._book)
    await listener.on_partitions_revoked({P0, P1})
    await listener.on_partitions_assigned({P0})
    consumer = _Consumer({P0})
    await events._commit(consumer)
    assert consumer.commits == []
    events._book.read(P0, 30)
    await events._commit(consumer)
    assert consumer.commits == [{P0: 31}]


def test_a_job_running_when_its_partition_was_revoked_still_holds_it_once_it_is_back() -> None:
    book = given((P0, 4, 1), (P0, 5, 0))
    book.reset(P0)
    book.read(P0, 4)  # the new owner gave it back before committing: read again from 4
    assert book.committable() == {P0: 4}
    book.finished(P0, 4)
    assert book.committable() == {P0: 5}
