"""An attempt the shell's last check refused before the dial (``too_late_to_dial``) rang nobody:
it is recorded ``not_dialled`` and does not count against the request's maximum attempts, in
the running state, in a state rebuilt from the log, and on the campaign's read side."""

from __future__ import annotations

from typing import Any

from dialer_scenario import (
    AGENT,
    OPTIONS,
    _env,
    at,
    ended,
    given_agents,
    place,
    published,
    run,
    tick,
)

from projections.campaign_view import CampaignBatch, fold
from schemas.dialer import (
    CallAttemptRecorded,
    CallAttemptStarted,
    CallDialFailed,
    CallRequestCompleted,
    DialerEvent,
)
from schemas.ids import CallId
from streams.dialer.state import DialerState, advance, evolve

H = 3600


def too_late(call: str, attempt: int, t: float, why: str = "outside the calling window") -> CallDialFailed:
    """The shell refused the attempt's dial as it would have gone out (``too_late_to_dial``)."""
    return CallDialFailed(
        **_env(t),
        agent_id=AGENT,
        call_id=CallId("r1"),
        attempt_call_id=CallId(call),
        attempt=attempt,
        message=f"not dialled: {why}",
        retryable=True,
        not_dialled=True,
    )


def said(events: list[DialerEvent]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for event in events:
        if isinstance(event, CallAttemptStarted):
            out.append(("started", event.attempt))
        elif isinstance(event, CallAttemptRecorded):
            out.append(("recorded", event.attempt, event.outcome, event.retry_at is not None))
        elif isinstance(event, CallRequestCompleted):
            out.append(("completed", event.outcome, event.attempts))
    return out


def busy_until_done(state: DialerState, t: float) -> list[DialerEvent]:
    """Every live attempt ends busy, and time passes, until the request is over."""
    events: list[DialerEvent] = []
    while state.requests and t < 10_000:
        for call in sorted(state.live):
            events += run(state, ended(call, "busy", t))
        t += 100
        events += run(state, tick(t))
    return events


def test_an_attempt_not_dialled_does_not_count_against_the_maximum() -> None:
    """OPTIONS allow 3 attempts: after one not dialled, three calls still ring the person."""
    state = given_agents(published())
    run(state, place("r1"))
    events = run(state, too_late("r1", 1, 1), tick(2))
    assert said(events) == [("recorded", 1, "not_dialled", True), ("started", 2)]
    events = busy_until_done(state, 3)
    assert said(events) == [
        ("recorded", 2, "busy", True),
        ("started", 3),
        ("recorded", 3, "busy", True),
        ("started", 4),
        ("recorded", 4, "busy", False),
        ("completed", "failed", 4),
    ]


def test_the_back_off_counts_the_calls_that_rang_only() -> None:
    state = given_agents(published())
    run(state, place("r1"), too_late("r1", 1, 1), tick(2))
    (recorded,) = [e for e in run(state, ended("r1-a2", "busy", 3)) if isinstance(e, CallAttemptRecorded)]
    assert recorded.retry_at == at(3 + OPTIONS.retry.base_s)  # the first call's back-off


def test_a_state_rebuilt_from_the_log_counts_the_same() -> None:
    state = given_agents(published())
    log = run(state, place("r1"), too_late("r1", 1, 1), tick(2), ended("r1-a2", "busy", 3))
    rebuilt = given_agents(published())
    for event in log:
        evolve(rebuilt, event)
    assert state.clock is not None
    advance(rebuilt, state.clock)
    assert rebuilt == state
    assert rebuilt.requests[CallId("r1")].not_dialled == 1
    assert said(busy_until_done(rebuilt, 4)) == said(busy_until_done(state, 4))


def test_one_not_dialled_for_its_deadline_ends_deadline_passed() -> None:
    state = given_agents(published())
    run(state, place("r1", 0, deadline=at(60)))
    events = run(state, too_late("r1", 1, 60, why="the deadline passed before the dial"))
    assert said(events) == [("recorded", 1, "not_dialled", False), ("completed", "deadline_passed", 1)]
    assert state.requests == {}


def test_one_not_dialled_outside_the_window_waits_for_it_to_open() -> None:
    state = given_agents(published(calling_window="09:00-18:00"))
    run(state, place("r1", 6 * H - 60))  # dialled at 17:59
    events = run(state, too_late("r1", 1, 6 * H + 60))  # refused at 18:01
    (recorded,) = [e for e in events if isinstance(e, CallAttemptRecorded)]
    assert (recorded.outcome, recorded.retry_at) == ("not_dialled", at(21 * H))
    assert run(state, tick(20 * H)) == []
    assert said(run(state, tick(21 * H + 1))) == [("started", 2)]


def test_the_campaign_read_side_shows_a_request_not_dialled_as_retrying() -> None:
    state = given_agents(published(calling_window="09:00-18:00"))
    log = run(state, place("r1", 6 * H - 60, campaign="cmp"), too_late("r1", 1, 6 * H + 60))
    batch = CampaignBatch(calls={})
    for event in log:
        fold(batch, event)
    assert [(c.stage, c.failed) for c in batch.calls.values()] == [("retrying", False)]


def test_one_not_dialled_whose_window_opens_only_after_its_deadline_ends_deadline_passed() -> None:
    """Refused at 18:01 with the deadline at 20:00: the window opens again at 09:00, too late.

    No retry is promised for 09:00 (``retry_at`` says when a retry is due), and the request does
    not sit in the queue as retrying until a tick after 20:00 ends it."""
    state = given_agents(published(calling_window="09:00-18:00"))
    run(state, place("r1", 6 * H - 60, deadline=at(8 * H)))  # dialled at 17:59
    events = run(state, too_late("r1", 1, 6 * H + 60))  # refused at 18:01
    (recorded,) = [e for e in events if isinstance(e, CallAttemptRecorded)]
    assert (recorded.outcome, recorded.retry_at) == ("not_dialled", None)
    assert said(events) == [("recorded", 1, "not_dialled", False), ("completed", "deadline_passed", 1)]
    assert state.requests == {}
