"""Which analytics days a batch recomputes: only those whose figures its events can change."""

from __future__ import annotations

from projections import call_batch, call_view
from schemas import calls
from tests.support.call_stream import T0, call_events

EVENTS = call_events("t1", "c1", "a1", talk_s=30)
DAY = ("t1", "a1", T0.date())


def _stored_after(count: int) -> dict[str, call_view.CallView]:
    """The call row as the read model holds it after the first `count` events."""
    view = call_view.initial(EVENTS[0])
    for event in EVENTS[:count]:
        view = call_view.evolve(view, event)
    return {"c1": view}


def test_rs_a_new_call_makes_its_day_dirty() -> None:
    assert call_batch.fold_batch({}, EVENTS[:1]).dirty_days == {DAY}


def test_rs_a_transcript_piece_or_a_recording_leaves_the_days_figures_alone() -> None:
    quiet = [e for e in EVENTS if isinstance(e, calls.TranscriptSegment | calls.RecordingAvailable)]
    assert quiet
    for event in quiet:
        stored = _stored_after(EVENTS.index(event))
        assert call_batch.fold_batch(stored, [event]).dirty_days == set(), type(event).__name__


def test_rs_events_that_change_a_figure_make_the_day_dirty() -> None:
    for kind in (calls.AgentInterrupted, calls.ToolCallRequested, calls.CallEnded, calls.MediaStreamStarted):
        event = next(e for e in EVENTS if isinstance(e, kind))
        stored = _stored_after(EVENTS.index(event))
        assert call_batch.fold_batch(stored, [event]).dirty_days == {DAY}, kind.__name__


def test_rs_every_event_of_a_call_that_changes_the_row_for_analytics_is_caught() -> None:
    # Whatever the cut into batches, the days marked cover every change of an analytics figure.
    for cut in range(1, len(EVENTS)):
        stored = _stored_after(cut)
        batch = call_batch.fold_batch(stored, EVENTS[cut:])
        final = batch.views["c1"]
        fields = (
            "status",
            "duration_ms",
            "interruptions",
            "tool_calls",
            "first_agent_audio_ms",
            "answered_at",
        )
        if any(getattr(stored["c1"], f) != getattr(final, f) for f in fields):
            assert batch.dirty_days == {DAY}


def test_rs_the_fields_watched_are_every_call_column_the_analytics_statement_reads() -> None:
    import re

    from projections.call_projection import _ANALYTICS_SQL

    read = set(re.findall(r"\bc\.(\w+)", str(_ANALYTICS_SQL)))
    # call_id is the row's key and tenant_id never changes on a row (another tenant is refused).
    assert read - {"call_id", "tenant_id"} == set(call_batch._ANALYTICS_FIELDS)
