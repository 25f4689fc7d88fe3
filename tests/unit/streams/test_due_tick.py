"""The clock sends a call's tick only when a timer is due: a tick that fires nothing is no record."""

from __future__ import annotations

from hypothesis import given as for_all
from hypothesis import strategies as st

from schemas.calls import CallEvent, CallInput
from streams.calls.machine import decide, fold
from streams.calls.shell import clock_tick, due_tick
from streams.calls.state import CallState
from tests.unit.streams.call_scenario import (
    LIMITS,
    at,
    caller_started,
    hang_up_requested,
    history,
    live,
    received,
    stream_started,
)


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


@for_all(
    at_s=st.floats(min_value=0, max_value=1_000, allow_nan=False),
    talking=st.booleans(),
    ending=st.booleans(),
)
def test_a_tick_is_sent_exactly_when_the_decider_would_act_on_it(
    at_s: float, talking: bool, ending: bool
) -> None:
    more: list[CallInput] = [
        *([caller_started(4)] if talking else []),
        *([hang_up_requested(5)] if ending else []),
    ]
    state = state_of(*history(received(0), stream_started(1), *more))
    tick = due_tick(state, LIMITS, at(at_s))
    probe = tick if tick is not None else clock_tick(state, at(at_s))
    assert (tick is not None) == bool(decide(state, probe, LIMITS))
