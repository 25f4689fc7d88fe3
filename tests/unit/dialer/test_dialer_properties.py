"""Properties of the dialer decider over random traffic: limits hold, nothing is lost."""

from __future__ import annotations

from collections import Counter

from dialer_scenario import AGENT, OPTIONS, ended, given_agents, place, published, run, status, tick
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.dialer import CallAttemptStarted, CallRequestCompleted
from schemas.ids import AgentId
from streams.dialer.decider import DialerOptions
from streams.dialer.state import advance, evolve

OTHER = AgentId("agent-2")
LIMITS = {AGENT: 2, OTHER: 3}

actions = st.lists(
    st.tuples(
        st.sampled_from(["place", "answer_end", "busy", "no_answer", "tick"]),
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
