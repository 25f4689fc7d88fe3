"""The clock sends a call's tick only when a timer is due: a tick that fires nothing is no record."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from schemas.calls import CallEvent, CallInput
from streams.calls.machine import decide, evolve, fold
from streams.calls.shell import due_tick
from streams.calls.state import CallState
from tests.unit.streams.call_scenario import (
    LIMITS,
    at,
    caller_started,
    hang_up_requested,
    history,
    live,
    received,
)
from tests.unit.streams.test_call_properties import input_sequences


def state_of(*log: CallEvent) -> CallState:
    state = fold(log)
    assert state is not None
    return state


def test_a_quiet_live_call_gets_no_tick_until_its_silence_is_due() -> None:
    state = state_of(*live())  # last activity at t=3, silence timeout 20 s
    assert due_tick(state, LIMITS, at(22.9)) is None
    tick = due_tick(state, LIMITS, at(23))
    assert tick is not None
    assert (tick.call_id, tick.tenant_id, tick.now) == (state.call_id, state.tenant_id, at(23))


def test_a_call_someone_is_talking_on_gets_no_tick_until_its_maximum_duration() -> None:
    state = state_of(*live(caller_started(4)))  # answered at t=1, max 600 s
    assert due_tick(state, LIMITS, at(500)) is None
    assert due_tick(state, LIMITS, at(601)) is not None


def test_setup_and_settle_timeouts_are_due_ticks() -> None:
    assert due_tick(state_of(*history(received(0))), LIMITS, at(89)) is None
    assert due_tick(state_of(*history(received(0))), LIMITS, at(90)) is not None
    ending = state_of(*live(hang_up_requested(4)))
    assert due_tick(ending, LIMITS, at(33)) is None
    assert due_tick(ending, LIMITS, at(34)) is not None


@settings(max_examples=200, deadline=None)
@for_all(input_sequences(), st.floats(min_value=0, max_value=1_000, allow_nan=False))
def test_a_timer_the_clock_finds_due_stays_due_until_something_happens(
    inputs: list[CallInput], later_s: float
) -> None:
    # The clock's view of a call can lag the agent's by an input in flight; a timer it misses
    # then is caught at a later tick only if a due timer stays due as time passes.
    for state in _live_states(inputs):
        now = state.last_activity_at
        for step_s in (0.0, 1.0, 20.0, 90.0, 600.0):
            if due_tick(state, LIMITS, now + timedelta(seconds=step_s)) is not None:
                assert due_tick(state, LIMITS, now + timedelta(seconds=step_s + later_s)) is not None
                break


def _live_states(inputs: list[CallInput]) -> list[CallState]:
    states: list[CallState] = []
    state: CallState | None = None
    for input_ in inputs:
        for event in decide(state, input_, LIMITS):
            state = evolve(state, event)
        if state is not None and state.live:
            states.append(state)
    return states
