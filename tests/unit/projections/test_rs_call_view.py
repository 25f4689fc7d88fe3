"""The call view fold: given events, then the row."""

from __future__ import annotations

from datetime import timedelta

from projections import call_view
from schemas import calls
from tests.support.call_stream import T0, call_events


def fold(events: list[calls.CallEvent]) -> call_view.CallView:
    view = call_view.initial(events[0])
    for event in events:
        view = call_view.evolve(view, event)
    return view


def test_rs_an_answered_call_ends_completed_with_talk_time_and_counters() -> None:
    view = fold(call_events("t1", "c1", "a1", talk_s=30))
    assert (view.status, view.end_reason, view.ended_by) == ("completed", "caller_hung_up", "caller")
    assert view.answered_at == T0 + timedelta(seconds=1)
    assert view.duration_ms == 30_000
    assert (view.interruptions, view.tool_calls, view.first_agent_audio_ms, view.last_seq) == (1, 1, 800, 10)


def test_rs_an_unanswered_call_is_no_answer_with_zero_duration() -> None:
    received, *_ = call_events("t1", "c2", "a1")
    ended = calls.CallEnded(
        tenant_id=received.tenant_id,
        call_id=received.call_id,
        seq=2,
        event_id=received.event_id,
        occurred_at=T0 + timedelta(seconds=20),
        correlation_id=received.correlation_id,
        reason="no_answer",
    )
    view = fold([received, ended])
    assert (view.status, view.duration_ms, view.answered_at) == ("no_answer", 0, None)


def test_rs_a_late_telephony_status_does_not_reopen_an_ended_call() -> None:
    events = call_events("t1", "c3", "a1")
    late = calls.TelephonyStatusChanged(
        tenant_id=events[0].tenant_id,
        call_id=events[0].call_id,
        seq=11,
        event_id=events[0].event_id,
        occurred_at=T0 + timedelta(minutes=5),
        correlation_id=events[0].correlation_id,
        twilio_call_sid="CA1",
        status="ringing",
    )
    view = fold([*events, late])
    assert view.status == "completed"
    assert view.telephony_status == "ringing"


def test_rs_timeline_rows_keep_the_payload_without_the_envelope() -> None:
    row = call_view.timeline_row(call_events("t1", "c4", "a1")[-1])
    assert row["event_type"] == "CallEnded"
    assert row["payload"] == {"reason": "caller_hung_up", "ended_by": "caller"}
