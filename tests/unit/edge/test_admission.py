"""Admission: reservations between the voice webhook and the media socket, and their expiry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.admission import Admission


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_answered_call_keeps_its_slot_until_its_stream_starts() -> None:
    admission = Admission(2, clock=Clock())
    assert admission.admit_call(open_streams=0)
    assert admission.admit_call(open_streams=0)
    assert not admission.admit_call(open_streams=0)  # both slots are promised: refuse, spoken
    assert admission.admit_stream(open_streams=0)  # the first socket is let in
    assert not admission.admit_call(open_streams=0)  # between its upgrade and its start: still held
    admission.claim()  # its `start`: it counts as an open stream now
    assert admission.admit_stream(open_streams=1)  # the second socket, though 1 + 1 = limit
    admission.claim()
    assert admission.reserved == 0
    assert not admission.admit_call(open_streams=2)


def test_a_socket_without_a_reservation_gets_a_free_slot_only() -> None:
    admission = Admission(1, clock=Clock())
    assert admission.admit_stream(open_streams=0)
    assert not admission.admit_stream(open_streams=1)


def test_a_reservation_no_socket_claims_expires() -> None:
    clock = Clock()
    admission = Admission(1, hold_s=30.0, clock=clock)
    assert admission.admit_call(open_streams=0)
    clock.now += 29.9
    assert not admission.admit_call(open_streams=0)
    clock.now += 0.1
    assert admission.reserved == 0
    assert admission.expired == 1
    assert admission.admit_call(open_streams=0)


def test_a_zero_limit_refuses_everything() -> None:
    admission = Admission(0, clock=Clock())
    assert not admission.admit_call(open_streams=0)
    assert not admission.admit_stream(open_streams=0)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        Admission(-1)
    with pytest.raises(ValueError, match="hold_s"):
        Admission(1, hold_s=0)


@given(
    limit=st.integers(min_value=0, max_value=6),
    steps=st.lists(st.sampled_from(["call", "stream", "hangup", "wait"]), max_size=60),
)
def test_streams_plus_promises_never_exceed_the_limit_when_sockets_follow_calls(
    limit: int, steps: list[str]
) -> None:
    """Sockets only for answered calls (as Twilio does): the limit is never overrun."""
    clock = Clock()
    admission = Admission(limit, hold_s=10.0, clock=clock)
    open_streams = 0
    for step in steps:
        if step == "call":
            admission.admit_call(open_streams)
        elif step == "stream" and admission.reserved:
            assert admission.admit_stream(open_streams)  # an answered call always gets in
            admission.claim()  # its start
            open_streams += 1
        elif step == "hangup" and open_streams:
            open_streams -= 1
        elif step == "wait":
            clock.now += 4.0
        assert open_streams + admission.reserved <= limit


def test_a_claim_without_a_reservation_changes_nothing() -> None:
    admission = Admission(1, clock=Clock())
    admission.claim()  # a socket that came without a webhook (a free slot) started
    assert admission.reserved == 0
    assert admission.admit_call(open_streams=0)


def test_sockets_not_yet_started_count_against_the_limit() -> None:
    admission = Admission(1, clock=Clock())
    assert admission.admit_call(open_streams=0)
    assert admission.admit_stream(open_streams=0, unstarted=0)  # the answered call's socket
    assert not admission.admit_stream(open_streams=0, unstarted=1)  # the reservation is taken
    free = Admission(2, clock=Clock())
    assert free.admit_stream(open_streams=0, unstarted=1)
    assert not free.admit_stream(open_streams=0, unstarted=2)
    assert not free.admit_stream(open_streams=1, unstarted=1)
