"""The call-events runner's offset book: a partition resumes at its oldest unfinished job."""

from __future__ import annotations

from aiokafka import TopicPartition

from streams.call_events_runner import OffsetBook

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
