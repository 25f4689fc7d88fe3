"""An operator's hang-up of a call nobody answered survives a dialer restart: it is in the log
(``CallAttemptHangUpNoted``), so a state rebuilt from the log still cancels the call once its sid
shows, and still does not dial again after a refused dial or an unanswered end."""

from __future__ import annotations

import asyncio
import dataclasses

from schemas.codec import Codec
from schemas.dialer import DialerEvent
from schemas.ids import CallId
from streams.dialer.shell import DialerShell
from streams.dialer.state import DialerState, advance, evolve
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
from tests.unit.dialer.test_dialer_cancel import (
    CANCELED,
    cancel,
    dial_refused,
    feed,
    noted,
    outcomes,
)
from tests.unit.dialer.test_dialer_shell_writes import Journal


def rebuilt_from(log: list[DialerEvent], before: DialerState) -> DialerState:
    """The state a restarted dialer folds from ``log``, its clock moved on to ``before``'s."""
    state = given_agents(published())
    for event in log:
        evolve(state, event)
    assert before.clock is not None
    advance(state, before.clock)
    return state


def hung_up_before_the_dial_report() -> tuple[DialerState, list[DialerEvent]]:
    """c1 is being dialled (no sid yet) when the operator ends it: the state, and the log."""
    state = given_agents(published())
    log, _ = feed(state, place("c1"), hang_up_requested("c1", 0.5))
    assert noted(log) == [("c1", "c1")]
    return state, log


def test_a_state_rebuilt_after_the_hang_up_has_the_mark_and_the_wait_for_the_sid() -> None:
    state, log = hung_up_before_the_dial_report()
    rebuilt = rebuilt_from(log, state)
    assert rebuilt.live[CallId("c1")].hang_up_requested
    assert list(rebuilt.cancel_when_known) == ["c1"]
    assert rebuilt == state


def test_after_a_restart_the_first_callback_with_the_sid_cancels_the_call() -> None:
    state, log = hung_up_before_the_dial_report()
    rebuilt = rebuilt_from(log, state)
    assert feed(rebuilt, status("c1", "initiated", 1)) == ([], [cancel("c1")])
    assert rebuilt.cancel_when_known == {}


def test_a_dial_refused_after_the_hang_up_is_not_retried_after_a_restart() -> None:
    state, log = hung_up_before_the_dial_report()
    rebuilt = rebuilt_from(log, state)
    events, _ = feed(rebuilt, dial_refused("c1", 1, retryable=True), tick(600))
    assert outcomes(events) == CANCELED
    assert (rebuilt.live, rebuilt.requests) == ({}, {})  # nobody is dialled again


def test_a_retry_cancelled_in_the_first_attempts_stead_is_not_retried_after_a_restart() -> None:
    """The hang-up of c1 was read while its retry c1-a2 was being dialled: c1-a2 is marked."""
    state = given_agents(published())
    log, _ = feed(state, place("c1"), dialled("c1", 1), dial_refused("c1", 2, retryable=True), tick(40))
    assert "c1-a2" in state.live
    events, _ = feed(state, hang_up_requested("c1", 40.5))
    assert noted(events) == [("c1-a2", "c1")]
    refused = dataclasses.replace(
        dial_refused("c1", 41, retryable=True), attempt_call_id=CallId("c1-a2"), attempt=2
    )
    for late_news in (refused, ended("c1-a2", "no_answer", 45)):
        rebuilt = rebuilt_from(log + events, state)
        assert rebuilt == state
        after, _ = feed(rebuilt, late_news, tick(600))
        assert outcomes(after) == CANCELED
        assert rebuilt.requests == {}


def test_a_hang_up_read_again_from_the_same_state_notes_byte_identical_events() -> None:
    """A crash before the hang-up's offset was committed: the rebuilt worker reads it again."""
    codec = Codec.single_object()
    state = given_agents(published())
    log, _ = feed(state, place("c1"), dialled("c1", 1))
    first, _ = feed(rebuilt_from(log, state), hang_up_requested("c1", 5))
    again, _ = feed(rebuilt_from(log, state), hang_up_requested("c1", 5))
    assert noted(first) == [("c1", "c1")]
    assert [codec.encode(e) for e in first] == [codec.encode(e) for e in again]


def test_a_hang_up_read_again_after_it_was_noted_cancels_again_and_notes_nothing_more() -> None:
    state = given_agents(published())
    log, _ = feed(state, place("c1"), dialled("c1", 1), hang_up_requested("c1", 5))
    rebuilt = rebuilt_from(log, state)
    feed(rebuilt, dialled("c1", 1))  # the sid, folded again from the dial report
    assert feed(rebuilt, hang_up_requested("c1", 5)) == ([], [cancel("c1")])


async def test_a_restarted_shell_cancels_on_the_sid_and_does_not_retry_a_refused_dial() -> None:
    codec = Codec.single_object()
    journal = Journal()
    shell = DialerShell(codec, OPTIONS, journal, send=journal.send, send_and_wait=journal.send_and_wait)
    shell.rebuild([published()])
    log = await shell.apply(place("c1"))
    log += await shell.apply(hang_up_requested("c1", 0.5))  # before the dial report
    await shell.drain()

    restarted = Journal()
    again = DialerShell(codec, OPTIONS, restarted, send=restarted.send, send_and_wait=restarted.send_and_wait)
    again.rebuild([published(), *log])
    await again.apply(status("c1", "initiated", 1))
    await asyncio.wait_for(again.drain(), 5)
    assert [entry for entry in restarted.entries if entry[0] == "cancel"] == [("cancel", "CAc1")]

    events = await again.apply(dial_refused("c1", 2, retryable=True))
    await again.tick(tick(600).now)
    assert outcomes(events) == CANCELED
    assert not [entry for entry in restarted.entries if entry[0] == "place"]


def test_a_rebuild_keeps_the_wait_until_a_dial_report_read_again_brings_the_sid() -> None:
    """The dial report was on its topic but not yet read when the worker stopped: the rebuild
    folds its sid, and the report, read again, still cancels the call."""
    journal = Journal()
    shell = DialerShell(
        Codec.single_object(), OPTIONS, journal, send=journal.send, send_and_wait=journal.send_and_wait
    )
    state, log = hung_up_before_the_dial_report()
    shell.rebuild([published(), *log, dialled("c1", 1)])
    rebuilt = shell.state(state.tenant_id)
    assert rebuilt.live[CallId("c1")].twilio_call_sid == "CAc1"
    assert feed(rebuilt, dialled("c1", 1)) == ([], [cancel("c1")])


def test_a_rebuild_waits_again_for_the_sid_of_a_dial_reported_failed() -> None:
    """A create that timed out, reported failed before the restart: if Twilio placed the call
    after all, its first status callback after the restart still cancels it."""
    state = given_agents(published())
    log, _ = feed(state, place("c1"))
    refused = dial_refused("c1", 1, retryable=False)
    log += feed(state, refused)[0]
    journal = Journal()
    shell = DialerShell(
        Codec.single_object(), OPTIONS, journal, send=journal.send, send_and_wait=journal.send_and_wait
    )
    shell.rebuild([published(), *log, refused])
    rebuilt = shell.state(state.tenant_id)
    assert rebuilt.cancel_when_known == state.cancel_when_known
    assert feed(rebuilt, status("c1", "initiated", 3)) == ([], [cancel("c1")])
