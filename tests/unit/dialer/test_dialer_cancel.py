"""A hang-up requested before anyone answered: the dialer cancels the call at Twilio once it knows the sid."""

from __future__ import annotations

import asyncio

from schemas.codec import Codec
from schemas.dialer import CallAttemptRecorded, CallRequestCompleted, DialerEvent
from schemas.ids import CallId
from streams.dialer.cancellation import CancelCall, follow_call
from streams.dialer.decider import DialerInput, step
from streams.dialer.shell import DialerShell
from streams.dialer.state import DialerState
from tests.unit.dialer.dialer_scenario import (
    OPTIONS,
    dialled,
    ended,
    given_agents,
    hang_up_requested,
    place,
    published,
    status,
    tick,
)
from tests.unit.dialer.test_dialer_shell_writes import Journal


def feed(state: DialerState, *inputs: DialerInput) -> tuple[list[DialerEvent], list[CancelCall]]:
    """Every event and every cancel the inputs cause, as the shell steps them."""
    events: list[DialerEvent] = []
    cancels: list[CancelCall] = []
    for input_ in inputs:
        events.extend(step(state, input_, OPTIONS))
        cancels.extend(follow_call(state, input_))
    return events, cancels


def cancel(call: str) -> CancelCall:
    return CancelCall(attempt_call_id=CallId(call), twilio_call_sid=f"CA{call}")


def ringing(call: str = "c1") -> DialerState:
    state = given_agents(published())
    feed(state, place(call), dialled(call, 1), status(call, "ringing", 2))
    return state


def test_a_hang_up_requested_while_it_rings_cancels_the_call_and_records_nothing_yet() -> None:
    state = ringing()
    assert feed(state, hang_up_requested("c1", 5)) == ([], [cancel("c1")])
    assert "c1" in state.live  # the call log says when it is over


def test_the_cancelled_call_ends_canceled_and_is_not_dialled_again() -> None:
    state = ringing()
    events, _ = feed(
        state, hang_up_requested("c1", 5), status("c1", "canceled", 6), ended("c1", "canceled", 6)
    )
    recorded = [e for e in events if isinstance(e, CallAttemptRecorded)]
    assert [(r.outcome, r.retry_at) for r in recorded] == [("canceled", None)]
    assert [e.outcome for e in events if isinstance(e, CallRequestCompleted)] == ["failed"]
    assert feed(state, hang_up_requested("c1", 7)) == ([], [])  # the attempt is over


def test_a_hang_up_requested_before_the_sid_is_known_cancels_on_the_dial_report() -> None:
    state = given_agents(published())
    feed(state, place("c1"))
    assert feed(state, hang_up_requested("c1", 0.5)) == ([], [])
    assert feed(state, dialled("c1", 1)) == ([], [cancel("c1")])
    assert feed(state, status("c1", "ringing", 2)) == ([], [])  # once is enough


def test_a_status_callback_that_overtakes_the_dial_report_cancels_it_first() -> None:
    state = given_agents(published())
    feed(state, place("c1"), hang_up_requested("c1", 0.5))
    assert feed(state, status("c1", "initiated", 1)) == ([], [cancel("c1")])
    assert feed(state, dialled("c1", 1.5)) == ([], [])


def test_an_answered_call_is_left_to_the_edge() -> None:
    state = ringing()
    feed(state, status("c1", "in-progress", 3))
    assert feed(state, hang_up_requested("c1", 5))[1] == []
    assert feed(state, hang_up_requested("c1", 6, requested_by="system"))[1] == []


def test_an_unknown_call_or_a_call_never_asked_to_end_is_not_cancelled() -> None:
    state = ringing()
    assert feed(state, hang_up_requested("inbound-call", 5)) == ([], [])
    assert feed(state, dialled("c1", 6), status("c1", "ringing", 7)) == ([], [])


def test_a_re_processed_hang_up_changes_nothing_but_asking_twilio_again() -> None:
    state = ringing()
    first = feed(state, hang_up_requested("c1", 5))
    assert feed(state, hang_up_requested("c1", 5)) == first


def test_a_later_attempt_is_cancelled_by_its_own_call_id() -> None:
    state = given_agents(published())
    feed(state, place("c1"), dialled("c1", 1), status("c1", "busy", 2), ended("c1", "busy", 2), tick(40))
    assert "c1-a2" in state.live
    assert feed(state, dialled("c1-a2", 41, attempt=2, request="c1"), hang_up_requested("c1-a2", 42)) == (
        [],
        [cancel("c1-a2")],
    )


async def test_the_shell_cancels_through_the_telephony_port_and_a_restart_keeps_the_sid() -> None:
    journal = Journal()
    codec = Codec.single_object()
    shell = DialerShell(codec, OPTIONS, journal, send=journal.send, send_and_wait=journal.send_and_wait)
    shell.rebuild([published()])
    events = await shell.apply(place("c1"))
    await shell.drain()
    await shell.apply(dialled("c1", 1))
    await shell.apply(hang_up_requested("c1", 5))
    await shell.drain()
    assert [entry for entry in journal.entries if entry[0] == "cancel"] == [("cancel", "CAc1")]

    restarted = Journal()
    again = DialerShell(codec, OPTIONS, restarted, send=restarted.send, send_and_wait=restarted.send_and_wait)
    again.rebuild([published(), *events, dialled("c1", 1)])
    await again.apply(hang_up_requested("c1", 5))
    await asyncio.wait_for(again.drain(), 5)
    assert [entry for entry in restarted.entries if entry[0] == "cancel"] == [("cancel", "CAc1")]


def test_a_call_ended_by_the_settle_timer_after_a_failed_cancel_is_recorded_canceled_not_answered() -> None:
    """The cancel never got through; the call machine's timer ended the call with the operator's
    reason. Nobody answered: the attempt is canceled (not retried), not a completed call."""
    state = ringing()
    events, _ = feed(state, hang_up_requested("c1", 5), ended("c1", "operator", 35))
    recorded = [e for e in events if isinstance(e, CallAttemptRecorded)]
    assert [(r.outcome, r.retry_at) for r in recorded] == [("canceled", None)]
    completed = [e for e in events if isinstance(e, CallRequestCompleted)]
    assert [(c.outcome, c.answered) for c in completed] == [("failed", False)]
