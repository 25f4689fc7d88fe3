"""The dialer's clock never goes back: an input read late is decided at the latest time seen."""

from __future__ import annotations

import asyncio
from typing import Any

from dialer_scenario import (
    AGENT,
    OPTIONS,
    TENANT,
    at,
    ended,
    given_agents,
    kinds,
    place,
    published,
    run,
    tick,
)

from schemas.codec import Codec
from schemas.dialer import (
    CallAttemptRecorded,
    CallAttemptStarted,
    CallDialFailed,
    CallRequestCompleted,
    CallRequestQueued,
)
from schemas.ids import AgentId
from streams.dialer.decider import too_late_to_dial
from streams.dialer.shell import DialerShell
from streams.dialer.state import evolve
from tests.unit.dialer.test_dialer_shell_writes import Journal

H = 3600  # T0 is 12:00 UTC, so 6 * H is 18:00
WINDOW = {"calling_window": "09:00-18:00", "max_concurrent_calls": 1}


def _shell(journal: Journal, **overrides: Any) -> DialerShell:
    wiring: dict[str, Any] = {"send": journal.send, "send_and_wait": journal.send_and_wait} | overrides
    return DialerShell(Codec.single_object(), OPTIONS, journal, **wiring)


def test_a_call_end_read_after_the_window_closed_does_not_dial_the_next_request() -> None:
    state = given_agents(published(**WINDOW))
    run(state, place("a", 5 * H + 58 * 60), place("b", 5 * H + 58 * 60 + 1))
    run(state, tick(6 * H + 5 * 60))  # 18:05: the window is closed
    events = run(state, ended("a", "caller_hung_up", 5 * H + 59 * 60))  # stamped 17:59, read late
    assert kinds(events) == ["CallRequestCompleted"]
    assert state.queue
    assert state.requests["b"].attempts == 0
    reopened = run(state, tick(21 * H + 1))  # 09:00:01 the next day
    assert kinds(reopened) == ["CallAttemptStarted"]


def test_a_request_stamped_before_closing_and_read_after_it_waits_for_the_window() -> None:
    state = given_agents(published(**WINDOW))
    run(state, tick(8 * H))  # 20:00
    events = run(state, place("c", 5 * H + 59 * 60))  # written at 17:59, read at 20:00
    assert kinds(events) == ["CallRequestQueued"]
    assert events[0].occurred_at == at(8 * H)  # decided when it was read
    assert kinds(run(state, tick(21 * H + 1))) == ["CallAttemptStarted"]


def test_a_request_past_its_deadline_by_the_clock_is_never_dialled_by_a_late_input() -> None:
    other = AgentId("agent-2")
    state = given_agents(published(max_concurrent_calls=1), published(agent=other))
    run(state, place("d", 0), place("e", 1, deadline=at(60)), place("x", 61, agent=other))
    events = run(state, ended("d", "caller_hung_up", 30))  # stamped before e's deadline, read after
    assert not any(isinstance(e, CallAttemptStarted) and e.call_id == "e" for e in events)
    assert [(e.call_id, e.outcome) for e in events if isinstance(e, CallRequestCompleted)] == [
        ("d", "completed"),
        ("e", "deadline_passed"),
    ]


def test_the_clock_is_rebuilt_from_the_log_and_moved_on_to_the_workers_start() -> None:
    live = given_agents(published(**WINDOW))
    events = run(live, place("a", 5 * H + 58 * 60), place("b", 5 * H + 58 * 60 + 1))
    rebuilt = given_agents(published(**WINDOW))
    for event in events:
        evolve(rebuilt, event)
    assert rebuilt.clock == live.clock == at(5 * H + 58 * 60 + 1)

    shell = _shell(Journal())
    shell.rebuild([published(**WINDOW), *events], now=at(6 * H + 5 * 60))  # restarted at 18:05
    decided = asyncio.run(shell.apply(ended("a", "caller_hung_up", 5 * H + 59 * 60)))
    assert not any(isinstance(event, CallAttemptStarted) for event in decided)


def test_an_idle_tenant_s_clock_follows_the_ticks() -> None:
    shell = _shell(Journal())
    shell.rebuild([published(**WINDOW)])
    asyncio.run(shell.tick(at(8 * H)))
    events = asyncio.run(shell.apply(place("c", 5 * H + 59 * 60)))
    assert [type(e) for e in events] == [CallRequestQueued]


def test_a_dial_is_checked_against_the_window_and_the_deadline_when_it_would_go_out() -> None:
    state = given_agents(published(**WINDOW))
    run(state, place("f", 0, deadline=at(H)))
    agent, request = state.agents[AGENT], state.requests["f"]
    assert too_late_to_dial(agent, request, at(60)) is None
    assert "deadline" in (too_late_to_dial(agent, request, at(H)) or "")
    assert "calling window" in (too_late_to_dial(agent, None, at(6 * H)) or "")


async def test_a_decision_dialled_after_the_window_closed_is_reported_not_placed() -> None:
    codec = Codec.single_object()
    journal = Journal()
    reports: list[object] = []

    async def send_and_wait(topic: str, key: bytes, value: bytes) -> None:
        await journal.send_and_wait(topic, key, value)
        reports.append(codec.decode(value))

    # Decided at 17:59, dialled at 18:05 (the broker held the decision's events meanwhile).
    shell = _shell(journal, send_and_wait=send_and_wait, now=lambda: at(6 * H + 5 * 60))
    shell.rebuild([published(**WINDOW)])
    events = await shell.apply(place("g", 5 * H + 59 * 60))
    await shell.drain()
    assert "CallAttemptStarted" in kinds(events)
    assert not [entry for entry in journal.entries if entry[0] == "place"]
    (failed,) = [r for r in reports if isinstance(r, CallDialFailed)]
    assert (failed.retryable, failed.not_dialled) == (True, True)
    assert "calling window" in failed.message
    retried = await shell.apply(failed)
    recorded = [(e.outcome, e.retry_at) for e in retried if isinstance(e, CallAttemptRecorded)]
    assert recorded == [("not_dialled", at(21 * H))]  # due when the window opens, 09:00 next day
    assert shell.state(TENANT).requests["g"].not_dialled == 1  # it rang nobody: it costs nothing


async def test_an_input_stamped_a_little_ahead_is_decided_at_the_workers_clock() -> None:
    # 08:58 by the worker; the producer's clock is 3 minutes fast. The window opens at 09:00.
    worker_now = at(-3 * H - 2 * 60)
    shell = _shell(Journal(), now=lambda: worker_now)
    shell.rebuild([published(**WINDOW)])
    ahead = place("h", -3 * H + 60)  # stamped 09:01
    assert await shell.handle(Codec.single_object().encode(ahead)) is None
    state = shell.state(TENANT)
    assert state.clock == worker_now
    assert state.requests["h"].attempts == 0  # not dialled before 09:00
    await shell.tick(at(-3 * H))
    assert state.requests["h"].attempts == 1
