"""A dialer stopped between an attempt's start and its dial (waiting behind ``max_in_flight``
or a broker outage) leaves the attempt live in its log with no sid and no dial report. After a
restart, one whose call never reached the call log (no ``CallReceived``) was never sent to
Twilio: it is reported ``not_dialled`` (no attempt spent, its slot freed at once); one whose
call is in the call log may have reached Twilio and is left to the call log (``recovery``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from schemas.catalog import DIALER_REQUESTS
from schemas.codec import Codec
from schemas.dialer import CallAttemptRecorded, CallAttemptStarted, CallDialFailed, DialerEvent
from schemas.ids import CallId
from streams.dialer.cancellation import fold_report
from streams.dialer.outcomes import lost_after
from streams.dialer.recovery import never_dialled, unreported
from streams.dialer.shell import DialerShell
from streams.dialer.state import DialerState, advance, evolve
from tests.unit.dialer.dialer_scenario import (
    OPTIONS,
    at,
    dialled,
    given_agents,
    place,
    published,
    run,
    tick,
)
from tests.unit.dialer.test_dialer_shell_writes import Journal

C1 = CallId("c1")
CODEC = Codec.single_object()


def started_then_stopped(*calls: str) -> tuple[list[DialerEvent], DialerState]:
    """Each call's first attempt started (in the log), then the dialer stopped before any dial
    report: the log, and the state a restart folds from it at t=5."""
    log = run(given_agents(published()), *(place(call) for call in calls))
    assert [e.attempt_call_id for e in log if isinstance(e, CallAttemptStarted)] == list(calls)
    rebuilt = given_agents(published())
    for event in log:
        evolve(rebuilt, event)
    advance(rebuilt, at(5))
    return log, rebuilt


def test_an_attempt_whose_call_never_reached_the_call_log_is_reported_not_dialled() -> None:
    _, state = started_then_stopped("c1")
    (report,) = never_dialled(state, reported=set(), logged=set(), now=at(5), options=OPTIONS)
    assert (report.attempt_call_id, report.attempt, report.not_dialled, report.retryable) == (
        C1,
        1,
        True,
        True,
    )
    events = run(state, report)
    recorded = [(e.attempt, e.outcome) for e in events if isinstance(e, CallAttemptRecorded)]
    assert recorded == [(1, "not_dialled")]
    # Its slot is free at once and the request dialled again, the attempt not counted.
    assert [e.attempt_call_id for e in events if isinstance(e, CallAttemptStarted)] == ["c1-a2"]
    assert list(state.live) == ["c1-a2"]
    assert state.requests[C1].not_dialled == 1


def test_an_attempt_whose_call_is_in_the_call_log_is_not_dialled_again() -> None:
    """Its CallReceived was logged, so Twilio may have been asked: the call log settles it."""
    _, state = started_then_stopped("c1")
    assert [a.attempt_call_id for a in unreported(state, set(), at(5), OPTIONS)] == [C1]
    assert never_dialled(state, reported=set(), logged={C1}, now=at(5), options=OPTIONS) == []


def test_an_attempt_with_a_dial_report_or_a_sid_is_left_to_it() -> None:
    _, state = started_then_stopped("c1", "c2")
    fold_report(state, dialled("c2", 1))
    assert state.live[CallId("c2")].twilio_call_sid == "CAc2"  # a report folded on the rebuild
    assert never_dialled(state, reported={C1}, logged=set(), now=at(5), options=OPTIONS) == []


def test_an_attempt_already_lost_is_reaped_as_before() -> None:
    """Its CallReceived may be past the call inputs' retention: absent, it tells nothing."""
    _, state = started_then_stopped("c1")
    lost = lost_after(state, state.live[C1], OPTIONS)
    assert never_dialled(state, reported=set(), logged=set(), now=lost, options=OPTIONS) == []
    before = lost - timedelta(seconds=1)
    assert len(never_dialled(state, reported=set(), logged=set(), now=before, options=OPTIONS)) == 1
    recorded = [
        e for e in run(state, tick((lost - at(0)).total_seconds())) if isinstance(e, CallAttemptRecorded)
    ]
    assert [e.outcome for e in recorded] == ["lost"]


class Sent(Journal):
    """A Journal that keeps what was sent, by topic."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[str, bytes]] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        await super().send(topic, key, value)
        self.values.append((topic, value))

    async def send_and_wait(self, topic: str, key: bytes, value: bytes) -> None:
        await super().send_and_wait(topic, key, value)
        self.values.append((topic, value))


def restarted(journal: Sent, log: list[DialerEvent], *reports: object) -> DialerShell:
    shell = DialerShell(
        CODEC, OPTIONS, journal, send=journal.send, send_and_wait=journal.send_and_wait, now=lambda: at(5)
    )
    shell.rebuild([published(), *log, *reports], now=at(5))
    return shell


async def test_a_restarted_shell_reports_the_dial_that_never_went_out_and_dials_again() -> None:
    """c1 never reached the call log, c2 did: only c1 is reported, read back, and dialled again."""
    log, _ = started_then_stopped("c1", "c2")
    journal = Sent()
    shell = restarted(journal, log)
    assert sorted(shell.unreported()) == ["c1", "c2"]
    reports = await shell.report_never_dialled({CallId("c2")})
    assert [r.attempt_call_id for r in reports] == ["c1"]
    sent = [CODEC.decode(v) for topic, v in journal.values if topic == DIALER_REQUESTS.name]
    assert sent == reports
    assert shell.unreported() == ["c2"]  # reported once, also if asked again
    journal.entries.clear()
    for topic, value in list(journal.values):
        if topic == DIALER_REQUESTS.name and isinstance(CODEC.decode(value), CallDialFailed):
            await shell.handle(value)  # the dialer reads its report as any other
            break
    await asyncio.sleep(0.05)  # the new attempt's dial runs as a task
    await shell.drain()
    state = shell.states[published().tenant_id]
    assert sorted(state.live) == ["c1-a2", "c2"]
    assert state.requests[C1].not_dialled == 1
    assert ("place", "c1-a2") in journal.entries
    assert ("place", "c2") not in journal.entries


async def test_a_restart_after_the_report_was_written_does_not_report_again() -> None:
    log, _ = started_then_stopped("c1")
    first = Sent()
    (report,) = await restarted(first, log).report_never_dialled(set())
    again = restarted(Sent(), log, report)
    assert again.unreported() == []
    assert await again.report_never_dialled(set()) == []
