"""An operator ending an outbound call nobody has answered: cancelled at Twilio once the sid is
known, ended ``canceled`` and not dialled again, whatever order the two topics are read in."""

from __future__ import annotations

import asyncio
import dataclasses

from schemas.calls import CallEnded
from schemas.codec import Codec
from schemas.dialer import (
    CallAttemptHangUpNoted,
    CallAttemptRecorded,
    CallDialFailed,
    CallRequestCompleted,
    DialerEvent,
)
from schemas.ids import CallId
from streams.dialer.cancellation import CancelCall, follow_call
from streams.dialer.decider import DialerInput, step
from streams.dialer.shell import DialerShell
from streams.dialer.state import DialerState, evolve
from tests.unit.dialer.dialer_scenario import (
    AGENT,
    OPTIONS,
    _env,
    dialled,
    ended,
    failed,
    given_agents,
    hang_up_requested,
    place,
    published,
    status,
    tick,
)
from tests.unit.dialer.test_dialer_shell_writes import Journal

CANCELED = [("attempt", "canceled", False), ("request", "failed", False)]


def feed(state: DialerState, *inputs: DialerInput) -> tuple[list[DialerEvent], list[CancelCall]]:
    """Every event and every cancel the inputs cause, as the shell steps them (cancels first)."""
    events: list[DialerEvent] = []
    cancels: list[CancelCall] = []
    for input_ in inputs:
        cancels.extend(follow_call(state, input_))
        events.extend(step(state, input_, OPTIONS))
    return events, cancels


def outcomes(events: list[DialerEvent]) -> list[tuple[str, str, bool]]:
    """What the events say of each attempt and request: (kind, outcome, retried or answered)."""
    said: list[tuple[str, str, bool]] = []
    for event in events:
        if isinstance(event, CallAttemptRecorded):
            said.append(("attempt", event.outcome, event.retry_at is not None))
        elif isinstance(event, CallRequestCompleted):
            said.append(("request", event.outcome, event.answered))
    return said


def noted(events: list[DialerEvent]) -> list[tuple[str, str]]:
    """The hang-ups the events note: (the attempt cancelled, the call the operator ended)."""
    return [(e.attempt_call_id, e.ended_call_id) for e in events if isinstance(e, CallAttemptHangUpNoted)]


def cancel(call: str) -> CancelCall:
    return CancelCall(attempt_call_id=CallId(call), twilio_call_sid=f"CA{call}")


def ringing(call: str = "c1") -> DialerState:
    state = given_agents(published())
    feed(state, place(call), dialled(call, 1), status(call, "ringing", 2))
    return state


def dial_refused(call: str, t: float, *, retryable: bool) -> CallDialFailed:
    return CallDialFailed(
        **_env(t),
        agent_id=AGENT,
        call_id=CallId(call),
        attempt_call_id=CallId(call),
        attempt=1,
        error_code=20429 if retryable else None,
        http_status=429 if retryable else None,
        message="too many requests" if retryable else "Twilio may have placed the call",
        retryable=retryable,
    )


def ended_by_operator(call: str, reason: str, t: float) -> CallEnded:
    """The call machine's settle timer ending a call the operator asked to end, with their reason."""
    return CallEnded(**_env(t), call_id=CallId(call), reason=reason, ended_by="operator")


def test_a_hang_up_while_it_rings_cancels_the_call_and_the_attempt_keeps_its_slot() -> None:
    state = ringing()
    events, cancels = feed(state, hang_up_requested("c1", 5))
    assert (noted(events), cancels) == ([("c1", "c1")], [cancel("c1")])
    assert "c1" in state.live  # until the call ends: Twilio may still be ringing it
    assert state.cancel_when_known == {}  # the sid is known: nothing to wait for


def test_the_cancelled_call_ends_canceled_and_is_not_dialled_again() -> None:
    state = ringing()
    feed(state, hang_up_requested("c1", 5))
    events, _ = feed(state, status("c1", "canceled", 6), ended("c1", "canceled", 6), tick(600))
    assert outcomes(events) == CANCELED
    assert feed(state, hang_up_requested("c1", 7)) == ([], [])  # the attempt is over


def test_a_hang_up_before_the_sid_is_known_cancels_on_the_dial_report() -> None:
    state = given_agents(published())
    feed(state, place("c1"))
    events, cancels = feed(state, hang_up_requested("c1", 0.5))
    assert (noted(events), cancels) == ([("c1", "c1")], [])
    assert list(state.cancel_when_known) == ["c1"]
    assert feed(state, dialled("c1", 1)) == ([], [cancel("c1")])
    assert feed(state, status("c1", "ringing", 2)) == ([], [])  # once is enough
    assert state.cancel_when_known == {}


def test_a_status_callback_that_overtakes_the_dial_report_cancels_it_first() -> None:
    state = given_agents(published())
    feed(state, place("c1"), hang_up_requested("c1", 0.5))
    assert feed(state, status("c1", "initiated", 1)) == ([], [cancel("c1")])
    assert feed(state, dialled("c1", 1.5)) == ([], [])


def test_a_dial_refused_after_the_hang_up_is_canceled_not_retried() -> None:
    state = given_agents(published())
    feed(state, place("c1"), hang_up_requested("c1", 0.5))
    events, _ = feed(state, dial_refused("c1", 1, retryable=True), tick(600))
    assert outcomes(events) == CANCELED


def test_a_hang_up_after_a_refused_dial_ends_the_request_waiting_to_retry() -> None:
    """The two reports come on different topics, so either may come first: the same end."""
    state = given_agents(published())
    events, _ = feed(state, place("c1"), dialled("c1", 1), dial_refused("c1", 2, retryable=True))
    assert outcomes(events)[-1:] == [("attempt", "error", True)]
    events, cancels = feed(state, hang_up_requested("c1", 3), tick(600))
    assert (outcomes(events), cancels) == ([("request", "failed", False)], [])
    assert "c1-a2" not in state.live


def test_a_hang_up_of_another_call_leaves_a_request_waiting_to_retry_alone() -> None:
    state = given_agents(published())
    feed(state, place("c1"), dialled("c1", 1), dial_refused("c1", 2, retryable=True))
    for other in ("inbound-call", "c1-a2", "c1-a1", "c1-ax"):
        assert feed(state, hang_up_requested(other, 3)) == ([], [])
    assert "c1" in state.requests


def test_a_call_the_settle_timer_ended_with_the_operators_reason_is_canceled_after_a_restart_too() -> None:
    """The cancel never got through and the call machine's timer ended the call with the
    operator's reason (free text: even "no_answer"). The call's end says the operator ended it,
    so a state rebuilt from the log decides the same: canceled, and nobody is dialled again."""
    state = given_agents(published())
    log, _ = feed(state, place("c1"), dialled("c1", 1), status("c1", "ringing", 2))
    feed(state, hang_up_requested("c1", 5))
    rebuilt = given_agents(published())
    for event in log:
        evolve(rebuilt, event)
    for a_state in (state, rebuilt):
        events, _ = feed(a_state, ended_by_operator("c1", "no_answer", 35), tick(600))
        assert outcomes(events) == CANCELED
        assert (a_state.live, a_state.requests) == ({}, {})


def test_an_answered_call_is_left_to_the_edge() -> None:
    state = ringing()
    feed(state, status("c1", "in-progress", 3))
    assert feed(state, hang_up_requested("c1", 5)) == ([], [])
    events, _ = feed(state, ended_by_operator("c1", "operator_ended", 9))
    assert outcomes(events) == [("request", "completed", True)]


def test_only_the_operator_cancels_a_call_the_dialer_has_not_heard_answered() -> None:
    """The agent, the caller and the system end calls that were answered: the answer's callback
    is late or lost, not the answer."""
    for requester in ("agent", "caller", "system"):
        state = ringing()
        assert feed(state, hang_up_requested("c1", 5, requested_by=requester)) == ([], [])
        events, _ = feed(state, status("c1", "in-progress", 6), ended("c1", "agent_hung_up", 9))
        assert outcomes(events) == [("attempt", "answered", False), ("request", "completed", True)]


def test_a_later_attempt_is_cancelled_by_its_own_call_id() -> None:
    state = given_agents(published())
    feed(state, place("c1"), dialled("c1", 1), status("c1", "busy", 2), ended("c1", "busy", 2), tick(40))
    assert "c1-a2" in state.live
    second = dialled("c1-a2", 41, attempt=2, request="c1")
    events, cancels = feed(state, second, hang_up_requested("c1-a2", 42))
    assert (noted(events), cancels) == ([("c1-a2", "c1-a2")], [cancel("c1-a2")])


def test_a_dial_reported_failed_after_its_callbacks_brought_the_sid_is_cancelled_at_once() -> None:
    state = ringing()
    assert feed(state, dial_refused("c1", 12, retryable=False))[1] == [cancel("c1")]


def test_a_call_placed_after_all_by_a_dial_reported_failed_is_cancelled_when_its_sid_shows() -> None:
    """A create that timed out is reported failed and not retried; if Twilio placed the call all
    the same, its first status callback brings a sid for an attempt that is over."""
    state = given_agents(published())
    feed(state, place("c1"), dial_refused("c1", 1, retryable=False))
    assert feed(state, status("c1", "initiated", 3)) == ([], [cancel("c1")])
    assert feed(state, status("c1", "ringing", 4)) == ([], [])
    assert state.cancel_when_known == {}


def test_a_retryable_refusal_placed_nothing_and_waits_for_no_sid() -> None:
    state = given_agents(published())
    feed(state, place("c1"), dial_refused("c1", 1, retryable=True))
    assert state.cancel_when_known == {}


def test_a_wait_for_a_sid_is_given_up_after_an_hour() -> None:
    state = given_agents(published())
    feed(state, place("c1"), dial_refused("c1", 1, retryable=False))
    feed(state, tick(3000))
    assert list(state.cancel_when_known) == ["c1"]
    feed(state, tick(3602))
    assert state.cancel_when_known == {}


async def test_the_shell_cancels_through_the_telephony_port_and_again_after_a_restart() -> None:
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

    # Restarted before the call ended: the hang-up is read again and cancels again.
    restarted = Journal()
    again = DialerShell(codec, OPTIONS, restarted, send=restarted.send, send_and_wait=restarted.send_and_wait)
    again.rebuild([published(), *events, dialled("c1", 1)])
    await again.apply(hang_up_requested("c1", 5))
    await asyncio.wait_for(again.drain(), 5)
    assert [entry for entry in restarted.entries if entry[0] == "cancel"] == [("cancel", "CAc1")]


def retry_dialling(*, dialled_yet: bool = True) -> DialerState:
    """c1's dial was refused (retryably) and its retry c1-a2 is being dialled: the operator's
    hang-up of c1, on another topic than the refusal, is read only now."""
    state = given_agents(published())
    feed(state, place("c1"), dialled("c1", 1), dial_refused("c1", 2, retryable=True), tick(40))
    assert "c1-a2" in state.live
    if dialled_yet:
        feed(state, dialled("c1-a2", 41, attempt=2, request="c1"))
    return state


def test_a_hang_up_read_after_the_retry_started_cancels_the_retry_and_ends_the_request() -> None:
    state = retry_dialling()
    events, cancels = feed(state, hang_up_requested("c1", 42))
    assert (noted(events), cancels) == ([("c1-a2", "c1")], [cancel("c1-a2")])
    assert "c1-a2" in state.live  # it holds its slot until its call ends
    events, _ = feed(state, status("c1-a2", "canceled", 43), ended("c1-a2", "canceled", 43), tick(600))
    assert outcomes(events) == CANCELED
    assert (state.live, state.requests) == ({}, {})


def test_a_retry_that_ends_unanswered_before_the_cancel_lands_is_not_retried() -> None:
    for end in (ended("c1-a2", "no_answer", 43), ended("c1-a2", "busy", 43), failed("c1-a2", 43)):
        state = retry_dialling()
        feed(state, hang_up_requested("c1", 42))
        events, _ = feed(state, end, tick(600))
        assert outcomes(events) == CANCELED
        assert "c1-a3" not in state.live


def test_a_hang_up_read_before_the_retrys_sid_cancels_it_on_the_dial_report() -> None:
    state = retry_dialling(dialled_yet=False)
    events, cancels = feed(state, hang_up_requested("c1", 40.5))
    assert (noted(events), cancels) == ([("c1-a2", "c1")], [])
    assert feed(state, dialled("c1-a2", 41, attempt=2, request="c1")) == ([], [cancel("c1-a2")])


def test_a_retrys_dial_refused_after_a_hang_up_of_the_first_attempt_is_canceled_not_retried() -> None:
    state = retry_dialling(dialled_yet=False)
    feed(state, hang_up_requested("c1", 40.5))
    refused = dataclasses.replace(
        dial_refused("c1", 41, retryable=True), attempt_call_id=CallId("c1-a2"), attempt=2
    )
    events, _ = feed(state, refused, tick(600))
    assert outcomes(events) == CANCELED
    assert state.requests == {}


def test_a_hang_up_of_a_later_attempt_than_the_one_dialling_leaves_it_alone() -> None:
    state = retry_dialling()
    for other in ("c1-a3", "c1-a1", "other"):
        assert feed(state, hang_up_requested(other, 42)) == ([], [])
    assert not state.live[CallId("c1-a2")].hang_up_requested
