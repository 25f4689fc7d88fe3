"""Hypothesis properties of the call decider over arbitrary input sequences."""

import dataclasses
from collections.abc import Callable
from datetime import datetime

from call_scenario import (
    CALL,
    LIMITS,
    OTHER_TENANT,
    SID,
    agent_finished,
    agent_started,
    caller_started,
    caller_stopped,
    dtmf,
    end_call,
    handle_updated,
    hang_up_requested,
    interrupted,
    mark,
    received,
    recording,
    session_closed,
    session_opened,
    session_resumed,
    stream_started,
    stream_stopped,
    telephony,
    tick,
    tool_completed,
    tool_failed,
    tool_requested,
    transcript,
    transfer,
    usage,
    voicemail,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.call_media import INTERRUPT_SOURCES, STOP_REASONS
from schemas.calls import (
    END_REASONS,
    REQUESTERS,
    TELEPHONY_STATUSES,
    CallEvent,
    CallInput,
    ClockTicked,
    HangUpRequested,
    TransferRequested,
)
from schemas.codec import Codec
from schemas.envelope import derive_event_id
from streams.calls.machine import decide, evolve, fold
from streams.calls.state import SETTING_UP, SETTLING, TALKING, TERMINAL, CallState, CallStatus
from streams.calls.timers import SILENCE_CHECK_IN_TOOL

CODEC = Codec.single_object()
Input = st.SearchStrategy[CallInput]

_utterance = st.sampled_from(["u1", "u2"])
_tool = st.sampled_from(["tc1", "tc2"])
_sid = st.sampled_from([SID, "MZ-2"])
_requester = st.sampled_from([*REQUESTERS, "robot"])
_reason = st.sampled_from([*END_REASONS, "pressed 9"])

# Each takes the input's time; ticks are listed thrice so timers get a fair chance to fire.
BUILDERS: list[Callable[[float], Input]] = [
    lambda t: st.sampled_from(["inbound", "outbound"]).map(lambda d: received(t, d)),
    lambda t: _sid.map(lambda sid: stream_started(t, sid)),
    lambda t: st.tuples(st.sampled_from(STOP_REASONS), _sid).map(lambda a: stream_stopped(t, *a)),
    lambda t: st.just(caller_started(t)),
    lambda t: st.just(caller_stopped(t)),
    lambda t: st.just(dtmf(t)),
    lambda t: st.just(mark(t)),
    lambda t: st.sampled_from(["caller", "agent"]).map(lambda s: transcript(t, s)),
    lambda t: _utterance.map(lambda u: agent_started(t, u)),
    lambda t: _utterance.map(lambda u: agent_finished(t, u)),
    lambda t: st.tuples(_utterance, st.sampled_from(INTERRUPT_SOURCES)).map(lambda a: interrupted(t, *a)),
    lambda t: st.tuples(_tool, st.sampled_from(["lookup", SILENCE_CHECK_IN_TOOL])).map(
        lambda a: tool_requested(t, *a)
    ),
    lambda t: _tool.map(lambda i: tool_completed(t, i)),
    lambda t: _tool.map(lambda i: tool_failed(t, i)),
    lambda t: st.just(transfer(t)),
    lambda t: st.tuples(_requester, _reason).map(lambda a: hang_up_requested(t, *a)),
    lambda t: st.tuples(st.sampled_from(TELEPHONY_STATUSES), st.sampled_from([None, 486])).map(
        lambda a: telephony(t, *a)
    ),
    lambda t: st.just(telephony(t, "ringing")),  # an outbound call's own step, not 1 status in 9
    lambda t: st.just(session_opened(t)),
    lambda t: st.just(session_resumed(t)),
    lambda t: st.sampled_from([None, "h9"]).map(lambda h: session_closed(t, h)),
    lambda t: st.just(handle_updated(t)),
    lambda t: st.just(usage(t)),
    lambda t: st.just(recording(t)),
    lambda t: st.sampled_from(["Call us back.", "Bye."]).map(lambda m: voicemail(t, m)),
    lambda t: st.tuples(_requester, _reason).map(lambda a: end_call(t, *a)),
    lambda t: st.just(tick(t)),
    lambda t: st.just(tick(t)),
    lambda t: st.just(tick(t)),
]


@st.composite
def input_sequences(draw: st.DrawFn) -> list[CallInput]:
    """A call's inputs in time order, usually opened by CallReceived, some from another tenant."""
    # Either direction: opened inbound only, an outbound call was almost never dialled, and a
    # ringing one never (its setup timer could be switched off unseen).
    direction = draw(st.sampled_from(["inbound", "outbound"]))
    inputs: list[CallInput] = [received(0, direction)] if draw(st.integers(0, 9)) else []
    t = 0.0
    for _ in range(draw(st.integers(0, 40))):
        t += draw(st.sampled_from([0.0, 0.5, 1.0, 5.0, 19.0, 21.0, 31.0, 95.0, 650.0]))
        record = draw(draw(st.sampled_from(BUILDERS))(t))
        if draw(st.integers(0, 19)) == 0:
            record = dataclasses.replace(record, tenant_id=OTHER_TENANT)
        inputs.append(record)
    return inputs


Step = tuple[CallState | None, CallInput, list[CallEvent], CallState | None]


def run(inputs: list[CallInput]) -> list[Step]:
    """Each input decided and evolved in turn: (state before, input, events, state after)."""
    steps: list[Step] = []
    state: CallState | None = None
    for input_ in inputs:
        events = decide(state, input_, LIMITS)
        after = state
        for event in events:
            after = evolve(after, event)
        steps.append((state, input_, events, after))
        state = after
    return steps


def log_of(steps: list[Step]) -> list[CallEvent]:
    return [event for _, _, events, _ in steps for event in events]


def well_formed(state: CallState) -> None:
    """Every status carries the data that status promises."""
    if state.status in TERMINAL:
        assert state.ended_at is not None
        assert state.end_reason is not None
        assert not state.caller_speaking
        assert state.agent_utterance_id is None
        assert not state.tools_in_flight
    if state.status is CallStatus.ENDED:
        assert state.end_reason in END_REASONS
        assert state.ended_by in (*REQUESTERS, None)
    if state.status in SETTLING:
        assert state.settling_since is not None
    if state.status is CallStatus.ENDING:
        assert state.end_reason in END_REASONS
        assert state.ended_by in (*REQUESTERS, None)
    if state.status is CallStatus.TRANSFERRING:
        assert state.transfer_target is not None
    if state.status in TALKING or state.status is CallStatus.TRANSFERRING:
        assert state.answered_at is not None
    if state.status in SETTING_UP:
        assert state.answered_at is None
    assert len(state.tools_in_flight) <= state.tool_calls


def timers_respected(state: CallState, now: ClockTicked) -> None:
    """After a tick, no timer that was due is left unfired."""

    def elapsed(since: datetime) -> float:
        return (now.now - since).total_seconds()

    if state.status in SETTING_UP:
        assert elapsed(state.started_at) < LIMITS.setup_timeout_s
    if state.status in SETTLING:
        assert state.settling_since is not None
        assert elapsed(state.settling_since) < LIMITS.settle_timeout_s
    if state.status in TALKING:
        assert state.answered_at is not None
        assert elapsed(state.answered_at) < LIMITS.max_duration_s
        busy = state.caller_speaking or state.agent_utterance_id or state.tools_in_flight
        assert busy or elapsed(state.last_activity_at) < LIMITS.silence_timeout_s


@settings(max_examples=300, deadline=None)
@given(input_sequences())
def test_seq_grows_by_exactly_one_and_every_event_is_stamped_from_its_input(inputs: list[CallInput]) -> None:
    log = log_of(run(inputs))
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    for before, input_, events, _ in run(inputs):
        for event in events:
            assert event.event_id == derive_event_id(CALL, event.seq)
            assert (event.occurred_at, event.correlation_id) == (input_.occurred_at, input_.correlation_id)
            assert event.tenant_id == (before.tenant_id if before else input_.tenant_id)


@settings(max_examples=300, deadline=None)
@given(input_sequences())
def test_no_input_sequence_reaches_an_undefined_state(inputs: list[CallInput]) -> None:
    for before, input_, events, after in run(inputs):
        if after is None:
            assert events == []
            continue
        assert isinstance(after.status, CallStatus)
        well_formed(after)
        if before is not None and before.status in TERMINAL:
            # The end is final: late facts are recorded but change nothing.
            assert dataclasses.replace(after, seq=before.seq) == before
        if before is not None and before.live and any(isinstance(e, HangUpRequested) for e in events):
            assert after.status in {CallStatus.ENDING, *TERMINAL}
        if any(isinstance(e, TransferRequested) for e in events) and before and before.live:
            assert after.status is CallStatus.TRANSFERRING
        if isinstance(input_, ClockTicked) and after.tenant_id == input_.tenant_id:
            timers_respected(after, input_)


@settings(max_examples=300, deadline=None)
@given(input_sequences())
def test_fold_equals_the_state_evolved_step_by_step_and_ignores_redelivery(inputs: list[CallInput]) -> None:
    steps = run(inputs)
    log = log_of(steps)
    final = steps[-1][3] if steps else None
    assert fold(log) == final
    assert fold(iter(log)) == final  # read once, as a stream of records is
    half = len(log) // 2
    assert fold([*log[: half + 1], *log[:half], *log[half:]]) == final


@settings(max_examples=200, deadline=None)
@given(input_sequences())
def test_an_input_reprocessed_after_a_crash_re_emits_byte_identical_events(inputs: list[CallInput]) -> None:
    log: list[CallEvent] = []
    for before, input_, events, _ in run(inputs):
        # The worker died after sending events but before saving state: it rebuilds from the log.
        rebuilt = fold(log)
        assert rebuilt == before
        again = decide(rebuilt, input_, LIMITS)
        assert [CODEC.encode(e) for e in again] == [CODEC.encode(e) for e in events]
        log += events
