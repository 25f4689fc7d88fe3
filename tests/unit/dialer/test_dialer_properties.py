"""Properties of the dialer decider over random traffic: limits hold, nothing is lost, the state
is a fold of the events, an input decided again from the same state says the same bytes, and
nobody whose call an operator ended is dialled again."""

from __future__ import annotations

import copy
from collections import Counter

from dialer_scenario import (
    AGENT,
    OPTIONS,
    _env,
    ended,
    given_agents,
    hang_up_requested,
    place,
    published,
    run,
    status,
    tick,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import Codec
from schemas.dialer import (
    CallAttemptHangUpNoted,
    CallAttemptStarted,
    CallDialFailed,
    CallRequestCompleted,
    DialerEvent,
)
from schemas.ids import AgentId
from streams.dialer.cancellation import follow_call
from streams.dialer.decider import DialerInput, DialerOptions, step
from streams.dialer.state import Attempt, DialerState, advance, evolve

OTHER = AgentId("agent-2")
LIMITS = {AGENT: 2, OTHER: 3}

actions = st.lists(
    st.tuples(
        st.sampled_from(["place", "answer_end", "busy", "no_answer", "tick", "hang_up", "refused"]),
        st.integers(min_value=0, max_value=20),
        st.sampled_from([AGENT, OTHER]),
        st.integers(min_value=-2, max_value=2),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(actions)
def test_limits_hold_every_request_finishes_and_the_state_is_a_fold(
    steps: list[tuple[str, int, AgentId, int]],
) -> None:
    options = DialerOptions(retry=OPTIONS.retry, tenant_max_concurrent_calls=4)
    state = given_agents(published(AGENT, max_concurrent_calls=2), published(OTHER, max_concurrent_calls=3))
    events = []
    t = 0.0
    placed = 0
    for kind, n, agent, priority in steps:
        t += 1
        if kind == "place":
            placed += 1
            events += run(state, place(f"r{placed}", t, agent=agent, priority=priority), options=options)
        elif kind == "tick":
            events += run(state, tick(t + n * 10), options=options)
            t += n * 10
        elif state.live:
            call = sorted(state.live)[n % len(state.live)]
            if kind == "answer_end":
                events += run(
                    state, status(call, "in-progress", t), ended(call, "completed", t), options=options
                )
            elif kind in ("hang_up", "refused"):
                news = hang_up_requested(call, t) if kind == "hang_up" else _refused(state.live[call], t)
                events += _decided_twice(state, news, options)
            else:
                events += run(state, ended(call, kind, t), options=options)
        per_agent = Counter(a.agent_id for a in state.live.values())
        assert all(per_agent[a] <= LIMITS[a] for a in per_agent)
        assert len(state.live) <= 4
    # Drain: answer everything live and let time pass until nothing is left.
    for _ in range(200):
        if not state.requests:
            break
        t += 100
        for call in sorted(state.live):
            events += run(state, status(call, "in-progress", t), ended(call, "completed", t), options=options)
        events += run(state, tick(t), options=options)
    completed = {e.call_id for e in events if isinstance(e, CallRequestCompleted)}
    assert completed == {f"r{i}" for i in range(1, placed + 1)}
    assert all(e.attempt <= 3 for e in events if isinstance(e, CallAttemptStarted))
    rebuilt = given_agents(published(AGENT, max_concurrent_calls=2), published(OTHER, max_concurrent_calls=3))
    for event in events:
        evolve(rebuilt, event)
    # Ticks are not logged: a rebuilt clock is the last event's, which the shell moves on.
    assert rebuilt.clock is None or (state.clock is not None and rebuilt.clock <= state.clock)
    if state.clock is not None:
        advance(rebuilt, state.clock)
    assert rebuilt == state
    assert [e.seq for e in events if e.agent_id == AGENT] == list(
        range(1, sum(e.agent_id == AGENT for e in events) + 1)
    )
    for index, event in enumerate(events):
        if isinstance(event, CallAttemptHangUpNoted):
            later = events[index + 1 :]
            assert not [e for e in later if isinstance(e, CallAttemptStarted) and e.call_id == event.call_id]


_CODEC = Codec.single_object()


def _decided_twice(state: DialerState, news: DialerInput, options: DialerOptions) -> list[DialerEvent]:
    """Step ``news``, and a copy of the state too (a restart re-reading it): the same bytes."""
    again = run(copy.deepcopy(state), news, options=options)
    events = run(state, news, options=options)
    assert [_CODEC.encode(e) for e in events] == [_CODEC.encode(e) for e in again]
    return events


def _refused(attempt: Attempt, t: float) -> CallDialFailed:
    """Twilio refused the attempt's dial, retryably (a 429)."""
    return CallDialFailed(
        **_env(t),
        agent_id=attempt.agent_id,
        call_id=attempt.call_id,
        attempt_call_id=attempt.attempt_call_id,
        attempt=attempt.attempt,
        message="too many requests",
        retryable=True,
    )


traffic_with_restarts = st.lists(
    st.tuples(
        st.sampled_from(["place", "tick", "hang_up", "refused", "no_answer", "restart"]),
        st.integers(min_value=0, max_value=20),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(traffic_with_restarts)
def test_nobody_whose_call_an_operator_ended_is_dialled_again_across_restarts(
    steps: list[tuple[str, int]],
) -> None:
    """Stepped as the shell does (the Twilio side noted first); a restart folds the log again."""
    state = given_agents(published(AGENT, max_concurrent_calls=2))
    events: list[DialerEvent] = []
    ended_by_operator: dict[str, int] = {}  # request -> how many events there were at the hang-up
    t = 0.0
    placed = 0
    for kind, n in steps:
        t += 1
        news: DialerInput
        if kind == "restart":
            rebuilt = given_agents(published(AGENT, max_concurrent_calls=2))
            for event in events:
                evolve(rebuilt, event)
            if state.clock is not None:
                advance(rebuilt, state.clock)
            # The wait for a sid is kept; the sids come back from the dial reports (none here).
            assert state.cancel_when_known.items() <= rebuilt.cancel_when_known.items()
            state = rebuilt
            continue
        if kind == "place":
            placed += 1
            news = place(f"r{placed}", t)
        elif kind == "tick":
            t += n * 10
            news = tick(t)
        elif not state.live:
            continue
        else:
            attempt = state.live[sorted(state.live)[n % len(state.live)]]
            if kind == "hang_up":
                ended_by_operator.setdefault(attempt.call_id, len(events))
                news = hang_up_requested(attempt.attempt_call_id, t)
            else:
                news = _refused(attempt, t) if kind == "refused" else ended(attempt.attempt_call_id, kind, t)
        follow_call(state, news)
        events += step(state, news, OPTIONS)
    for call_id, then in ended_by_operator.items():
        assert not [e for e in events[then:] if isinstance(e, CallAttemptStarted) and e.call_id == call_id]
