"""The dialer decider: given agents and events, when an input arrives, then these events."""

from __future__ import annotations

from dialer_scenario import (
    AGENT,
    OPTIONS,
    TENANT,
    at,
    campaign,
    ended,
    failed,
    given_agents,
    kinds,
    place,
    published,
    run,
    status,
    tick,
)

from schemas.agents import AgentArchived
from schemas.dialer import (
    CallAttemptRecorded,
    CallAttemptStarted,
    CallDialFailed,
    CallRequestCompleted,
    CallRequestQueued,
    CampaignCancelled,
    CancelCampaign,
    CreateCampaign,
    DialerRequestRejected,
    MachineAnswerHandled,
    PauseCampaign,
    ResumeCampaign,
)
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, EventId
from streams.dialer.decider import DialerOptions, attempt_call_id
from streams.dialer.state import observe_agent


def test_a_request_with_a_free_slot_is_queued_and_dialled_at_once() -> None:
    state = given_agents(published())
    events = run(state, place("c1"))
    assert kinds(events) == ["CallRequestQueued", "CallAttemptStarted"]
    started = events[1]
    assert isinstance(started, CallAttemptStarted)
    assert (started.attempt_call_id, started.from_number, started.agent_version) == ("c1", "+15550000001", 1)
    assert [e.seq for e in events] == [1, 2]


def test_the_agent_limit_queues_the_excess_and_an_ended_call_frees_its_slot() -> None:
    state = given_agents(published(max_concurrent_calls=2))
    events = run(state, place("c1"), place("c2"), place("c3"))
    assert kinds(events).count("CallAttemptStarted") == 2
    assert len(state.live) == 2
    events = run(state, status("c1", "in-progress", 5), ended("c1", "caller_hung_up", 9))
    assert kinds(events) == ["CallAttemptRecorded", "CallRequestCompleted", "CallAttemptStarted"]
    assert isinstance(events[-1], CallAttemptStarted)
    assert events[-1].call_id == "c3"


def test_the_tenant_limit_holds_across_agents() -> None:
    other = AgentId("agent-2")
    state = given_agents(published(max_concurrent_calls=5), published(other, max_concurrent_calls=5))
    options = DialerOptions(retry=OPTIONS.retry, tenant_max_concurrent_calls=3)
    run(
        state,
        *(place(f"a{i}") for i in range(3)),
        *(place(f"b{i}", agent=other) for i in range(3)),
        options=options,
    )
    assert len(state.live) == 3


def test_the_queue_is_served_in_priority_order_then_first_come() -> None:
    state = given_agents(published(max_concurrent_calls=1))
    run(
        state,
        place("busy-line"),
        place("low", priority=-5),
        place("first", priority=5),
        place("second", priority=5),
    )
    order = []
    for call in ("busy-line", "first", "second"):
        events = run(state, status(call, "in-progress", 1), ended(call, "completed", 2))
        order += [e.call_id for e in events if isinstance(e, CallAttemptStarted)]
    assert order == ["first", "second", "low"]


def test_busy_busy_answered_records_three_attempts_with_growing_back_off() -> None:
    state = given_agents(published())
    run(state, place("c1"))
    first = run(state, ended("c1", "busy", 1))
    assert isinstance(first[0], CallAttemptRecorded)
    assert first[0].outcome == "busy"
    assert first[0].retry_at == at(11)
    assert run(state, tick(10)) == []
    second = run(state, tick(11))
    assert isinstance(second[0], CallAttemptStarted)
    assert second[0].attempt == 2
    assert second[0].attempt_call_id == attempt_call_id(CallId("c1"), 2) == "c1-a2"
    third = run(state, ended("c1-a2", "busy", 12), tick(31))
    assert isinstance(third[0], CallAttemptRecorded)
    assert third[0].retry_at == at(32)
    assert run(state, tick(32))[0].attempt_call_id == "c1-a3"  # type: ignore[union-attr]
    last = run(state, status("c1-a3", "in-progress", 33, "human"), ended("c1-a3", "caller_hung_up", 40))
    assert kinds(last) == ["CallAttemptRecorded", "CallRequestCompleted"]
    done = last[1]
    assert isinstance(done, CallRequestCompleted)
    assert (done.attempts, done.outcome, done.answered) == (
        3,
        "completed",
        True,
    )


def test_retries_stop_at_the_limit_and_the_request_fails() -> None:
    state = given_agents(published())
    run(state, place("c1"), ended("c1", "no_answer", 1), tick(11), failed("c1-a2", 12), tick(40))
    events = run(state, ended("c1-a3", "busy", 41))
    assert isinstance(events[0], CallAttemptRecorded)
    assert events[0].retry_at is None
    assert isinstance(events[1], CallRequestCompleted)
    assert events[1].outcome == "failed"
    assert not state.requests
    assert not state.live


def test_a_duplicate_idempotency_key_places_one_call() -> None:
    state = given_agents(published())
    events = run(state, place("c1", key="k"), place("c2", key="k"))
    assert kinds(events) == ["CallRequestQueued", "CallAttemptStarted", "DialerRequestRejected"]
    assert isinstance(events[2], DialerRequestRejected)
    assert events[2].reason == "duplicate"


def test_bad_requests_are_rejected_with_their_reason() -> None:
    state = given_agents(published())
    archived = AgentId("agent-old")
    observe_agent(state, published(archived))
    observe_agent(
        state,
        AgentArchived(
            tenant_id=TENANT,
            agent_id=archived,
            seq=9,
            event_id=derive_event_id(archived, 9),
            occurred_at=at(0),
            correlation_id=CorrelationId("c"),
            version=1,
        ),
    )
    options = DialerOptions(retry=OPTIONS.retry, do_not_call=frozenset({"+15559999999"}))
    events = run(
        state,
        place("bad", to="555-1234"),
        place("dnc", to="+15559999999"),
        place("ghost", agent=AgentId("nobody")),
        place("old", agent=archived),
        place("late", deadline=at(-1)),
        tick(options.unknown_agent_grace_s - 1),
        options=options,
    )
    reasons = [e.reason for e in events if isinstance(e, DialerRequestRejected)]
    assert reasons == ["invalid_number", "do_not_call", "archived_agent", "deadline_passed"]
    # An unknown agent may only be late: the request waits out a grace period first.
    late = run(state, tick(options.unknown_agent_grace_s), options=options)
    assert [(e.call_id, e.reason) for e in late if isinstance(e, DialerRequestRejected)] == [
        ("ghost", "unknown_agent")
    ]
    assert not state.live


def test_calls_wait_for_the_calling_window_in_the_agents_time_zone() -> None:
    # 12:00 UTC is 07:00 in New York: before a 09:00-17:00 window opens.
    state = given_agents(published(calling_window="09:00-17:00", timezone="America/New_York"))
    assert kinds(run(state, place("c1"))) == ["CallRequestQueued"]
    assert run(state, tick(2 * 3600 - 1)) == []
    assert kinds(run(state, tick(2 * 3600))) == ["CallAttemptStarted"]


def test_not_before_and_deadline_are_honoured() -> None:
    state = given_agents(published(max_concurrent_calls=1))
    run(state, place("c1"), place("later", not_before=at(100)), place("short", deadline=at(50)))
    assert run(state, tick(49)) == []
    events = run(state, tick(50))
    assert [e.call_id for e in events if isinstance(e, CallRequestCompleted)] == ["short"]
    events = run(state, status("c1", "in-progress", 101), ended("c1", "completed", 102))
    assert [e.call_id for e in events if isinstance(e, CallAttemptStarted)] == ["later"]


def test_a_machine_answer_hangs_up_under_the_hang_up_policy() -> None:
    state = given_agents(published(answering_machine_policy="hang_up"))
    run(state, place("c1"))
    events = run(state, status("c1", "in-progress", 3, "machine_start"))
    handled = events[0]
    assert isinstance(handled, MachineAnswerHandled)
    assert handled.action == "hang_up"
    assert isinstance(events[1], CallAttemptRecorded)
    assert events[1].outcome == "machine"
    done = run(state, ended("c1", "caller_hung_up", 4))
    assert isinstance(done[0], CallRequestCompleted)
    assert done[0].outcome == "machine"


def test_a_machine_answer_leaves_the_configured_voicemail() -> None:
    state = given_agents(
        published(answering_machine_policy="leave_message", voicemail_message="Please call us back.")
    )
    run(state, place("c1"))
    events = run(state, status("c1", "in-progress", 3, "machine_end_beep"))
    handled = events[0]
    assert isinstance(handled, MachineAnswerHandled)
    assert (handled.action, handled.voicemail_message) == ("leave_message", "Please call us back.")


def test_a_provider_error_is_retried_only_when_retryable() -> None:
    state = given_agents(published())
    run(state, place("c1"), place("c2"))

    def refused(call: str, retryable: bool) -> CallDialFailed:
        return CallDialFailed(
            tenant_id=TENANT,
            agent_id=AGENT,
            seq=0,
            event_id=EventId(call),
            occurred_at=at(1),
            correlation_id=CorrelationId(call),
            call_id=CallId(call),
            attempt_call_id=CallId(call),
            attempt=1,
            error_code=21211 if not retryable else 20429,
            http_status=400 if not retryable else 429,
            message="nope",
            retryable=retryable,
        )

    events = run(state, refused("c1", False), refused("c2", True))
    recorded = [e for e in events if isinstance(e, CallAttemptRecorded)]
    assert [(e.call_id, e.error_code, e.retry_at is not None) for e in recorded] == [
        ("c1", 21211, False),
        ("c2", 20429, True),
    ]


def test_campaigns_pause_resume_cancel_and_count_progress() -> None:
    state = given_agents(published(max_concurrent_calls=1))
    cid = campaign("camp-1")
    base = place("x")
    env = {k: getattr(base, k) for k in ("tenant_id", "seq", "event_id", "occurred_at", "correlation_id")}
    run(state, CreateCampaign(**env, agent_id=AGENT, campaign_id=cid, name="spring", total=3))
    run(state, *(place(f"p{i}", campaign=cid) for i in range(3)))
    progress = state.campaigns[cid]
    assert (progress.queued, progress.dialling) == (2, 1)
    run(state, PauseCampaign(**env, agent_id=AGENT, campaign_id=cid))
    assert run(state, status("p0", "in-progress", 1), ended("p0", "completed", 2))[-1].call_id == "p0"  # type: ignore[union-attr]
    assert not state.live
    started = run(state, ResumeCampaign(**env | {"occurred_at": at(3)}, agent_id=AGENT, campaign_id=cid))
    assert kinds(started) == ["CampaignResumed", "CallAttemptStarted"]
    events = run(state, CancelCampaign(**env | {"occurred_at": at(4)}, agent_id=AGENT, campaign_id=cid))
    assert isinstance(events[0], CampaignCancelled)
    assert events[0].dropped == 1
    run(state, ended("p1", "busy", 5))
    assert (progress.queued, progress.dialling, progress.answered, progress.failed, progress.done) == (
        0,
        0,
        1,
        1,
        3,
    )


def test_a_request_that_overtook_its_agent_is_dialled_once_the_agent_arrives() -> None:
    state = given_agents()
    assert kinds(run(state, place("c1"))) == ["CallRequestQueued"]
    observe_agent(state, published())
    assert kinds(run(state, tick(1))) == ["CallAttemptStarted"]


def test_replaying_the_same_inputs_from_the_same_state_gives_identical_events() -> None:
    inputs = [
        place("c1"),
        place("c2"),
        place("c3"),
        ended("c1", "busy", 1),
        tick(11),
        status("c2", "in-progress", 12),
    ]
    first = run(given_agents(published()), *inputs)
    second = run(given_agents(published()), *inputs)
    assert first == second
    assert all(isinstance(e.event_id, str) for e in first)
    assert len({e.event_id for e in first}) == len(first)


def test_the_state_is_a_fold_of_its_own_events() -> None:
    from streams.dialer.state import DialerState, advance, evolve

    state = given_agents(published())
    events = run(state, place("c1"), place("c2"), place("c3"), ended("c1", "busy", 1), tick(11))
    rebuilt = given_agents(published())
    for event in events:
        evolve(rebuilt, event)
    assert rebuilt.clock == max(e.occurred_at for e in events)  # a tick's time is not logged...
    advance(rebuilt, at(11))  # ...so the shell moves a rebuilt clock on to when it starts
    assert rebuilt == state
    assert isinstance(rebuilt, DialerState)
    assert [type(e) for e in events][:1] == [CallRequestQueued]


def test_an_attempt_that_never_hears_its_outcome_is_lost_and_frees_its_slot() -> None:
    # max_duration_s 600 plus the default 900 s of slack: lost from 1,500 s after it started.
    state = given_agents(published(max_concurrent_calls=1))
    run(state, place("c1"), place("c2"))
    assert list(state.live) == ["c1"]
    assert run(state, tick(1_499)) == []
    events = run(state, tick(1_500))
    assert kinds(events) == ["CallAttemptRecorded", "CallRequestCompleted", "CallAttemptStarted"]
    lost, completed, started = events
    assert isinstance(lost, CallAttemptRecorded)
    assert (lost.call_id, lost.outcome, lost.retry_at) == ("c1", "lost", None)
    assert lost.detail is not None
    assert "no outcome by" in lost.detail
    assert isinstance(completed, CallRequestCompleted)
    assert (completed.outcome, completed.answered) == ("failed", False)
    assert isinstance(started, CallAttemptStarted)
    assert started.call_id == "c2"


def test_an_answered_attempt_that_is_lost_completes_its_request_as_answered() -> None:
    state = given_agents(published())
    run(state, place("c1"), status("c1", "in-progress", 5))
    events = run(state, tick(1_500))
    completed = events[-1]
    assert isinstance(completed, CallRequestCompleted)
    assert (completed.outcome, completed.answered) == ("completed", True)
    assert state.live == {}


def test_a_caller_id_that_is_not_the_agents_own_number_is_refused() -> None:
    # Any E.164 number was shown to the callee, another tenant's agent's included.
    state = given_agents(published(phone_numbers=("+15550001000",)))
    events = run(
        state, place("spoofed", from_number="+15550009999"), place("own", from_number="+15550001000")
    )
    rejected = [(e.call_id, e.reason) for e in events if isinstance(e, DialerRequestRejected)]
    assert rejected == [("spoofed", "invalid_number")]
