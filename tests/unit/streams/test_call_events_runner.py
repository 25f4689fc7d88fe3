"""The post-call runner and its offset book: a partition resumes at its oldest unfinished job."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError
from aiokafka.structs import OffsetAndMetadata

from infra.settings import Settings
from schemas.calls import CallReceived
from schemas.catalog import POSTCALL_EVENTS
from schemas.dialer import CallSummarized
from schemas.ids import AgentId, CallId, CorrelationId, EventId, TenantId
from streams import call_events_runner as runner
from streams import post_call_offsets as offsets
from streams.post_call_offsets import OffsetBook
from streams.writers.agent_rules import MAX_DURATION_S
from tests.support.call_stream import T0, call_events

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

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = set(partitions)

    def pause(self, *partitions: TopicPartition) -> None:
        return None

    async def committed(self, tp: TopicPartition) -> int | None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.error is not None:
            raise self.error
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})


def _runner(forgotten: list[CallId] | None = None) -> runner.CallEventsRunner:
    return runner.CallEventsRunner(
        Settings(env="test"),
        group_id="g",
        on_agent=lambda _: None,
        on_call=lambda _: [],
        on_forget=(forgotten if forgotten is not None else []).append,
        fetch_max_wait_ms=10,
    )


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
    events = _runner()
    events._book = given((P0, 4, 0), (P1, 9, 0))
    consumer, notes = _Consumer({P0}, error=CommitFailedError("rebalanced")), _Consumer({P0, P1})
    await events._commit(consumer, notes)  # logged, not raised
    consumer.error = None
    await events._commit(consumer, notes)
    assert consumer.commits == [{P0: 5}]
    assert notes.commits == [{P0: 5}]  # how far it was read: noted once, before the commit


async def test_a_partition_revoked_and_assigned_again_commits_nothing_before_it_is_read_again() -> None:
    # Meanwhile another worker may have committed P0 further on: our old position would undo it.
    events = _runner()
    events._book = given((P0, 4, 0), (P1, 9, 0))
    consumer, notes = _Consumer({P0}), _Consumer(set())
    listener = runner._ResetOnRebalance(events)
    await listener.on_partitions_revoked({P0, P1})
    await listener.on_partitions_assigned({P0})
    await events._commit(consumer, notes)
    assert consumer.commits == []
    events._book.read(P0, 30)
    await events._commit(consumer, notes)
    assert consumer.commits == [{P0: 31}]


async def test_the_calls_open_in_a_revoked_partition_are_forgotten_by_the_worker() -> None:
    # Its new owner (or we, given it back) reads them again from the commit, before their start.
    forgotten: list[CallId] = []
    events = _runner(forgotten)
    (received, *_) = call_events("t", "c1", "a")
    events._book.read(P0, 4)
    events._book.follow(P0, 4, received)
    await runner._ResetOnRebalance(events).on_partitions_revoked({P0})
    assert forgotten == ["c1"]
    assert events._book.committable() == {}


def test_a_job_running_when_its_partition_was_revoked_still_holds_it_once_it_is_back() -> None:
    book = given((P0, 4, 1), (P0, 5, 0))
    book.reset(P0)
    book.read(P0, 4)  # the new owner gave it back before committing: read again from 4
    assert book.committable() == {P0: 4}
    book.finished(P0, 4)
    assert book.committable() == {P0: 5}


def test_an_open_call_holds_its_partition_at_its_first_event_until_its_end_jobs_finish() -> None:
    first, *middle, end = call_events("t", "c1", "a")
    book = OffsetBook()
    for offset, event in enumerate([first, *middle], start=10):
        book.read(P0, offset)
        assert book.follow(P0, offset, event) == offset
    assert book.committable() == {P0: 10}
    book.read(P0, 30)
    held = book.follow(P0, 30, end)
    assert held == 10  # its end's jobs need the start read again after a crash
    book.started(P0, 10)
    assert book.committable() == {P0: 10}
    book.finished(P0, 10)
    assert book.committable() == {P0: 31}


def test_an_ended_call_with_no_end_jobs_holds_nothing() -> None:
    first, end = call_events("t", "c1", "a")[0], call_events("t", "c1", "a")[-1]
    book = OffsetBook()
    for offset, event in ((0, first), (1, end)):
        book.read(P0, offset)
        book.follow(P0, offset, event)
    assert book.committable() == {P0: 2}


def _received(call: str, start: datetime = T0, max_duration_s: int | None = None) -> CallReceived:
    first = call_events("t", call, "a", start=start)[0]
    assert isinstance(first, CallReceived)
    return replace(first, max_duration_s=max_duration_s)


def test_a_call_open_past_its_limit_and_the_slack_is_let_go() -> None:
    due = T0 + timedelta(seconds=600) + offsets.FORGET_SLACK
    book = OffsetBook()
    for offset, event in enumerate(
        [
            _received("c1", max_duration_s=600),
            _received("c2", start=due - timedelta(seconds=1)),
            _received("c3", start=due),
        ]
    ):
        book.read(P0, offset)
        book.follow(P0, offset, event)
        assert book.overdue(P0) == (["c1"] if offset == 2 else [])
    assert book.committable() == {P0: 1}  # the next call, not c1, holds it now


def test_a_call_with_no_limit_recorded_is_held_for_the_platforms_longest() -> None:
    book = OffsetBook()
    book.read(P0, 0)
    book.follow(P0, 0, _received("c1"))
    book.read(P0, 1)
    book.follow(P0, 1, _received("c2", start=T0 + timedelta(hours=4)))
    assert book.overdue(P0) == []
    book.follow(P0, 1, _received("c3", start=T0 + timedelta(hours=4, minutes=15)))
    assert book.overdue(P0) == ["c1"]


def test_the_longest_call_is_the_platforms_limit_on_max_duration() -> None:
    assert timedelta(seconds=MAX_DURATION_S) == offsets.LONGEST_CALL


def test_an_end_read_again_below_the_commits_note_is_skipped_and_one_above_it_is_not() -> None:
    end = call_events("t", "c1", "a")[-1]
    book = OffsetBook()
    book.resumed(P0, 20)
    assert book.follow(P0, 19, end) is None  # its call ended, jobs done, before the commit
    assert book.follow(P0, 20, end) == 20  # never seen: the worker says so
    book.read(P0, 20)
    assert book.handled(P0) == 21
    book.reset(P0)
    book.resumed(P0, 40)
    book.read(P0, 25)
    assert book.handled(P0) == 40  # a commit made before catching up keeps the note it resumed from
