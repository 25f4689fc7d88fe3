"""Pure parts of campaigns and summaries: CSV rows, campaign progress fold, summary prompt and reply."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.campaigns import parse_csv
from projections.campaign_view import CallStage, CampaignBatch, fold, progress
from schemas.dialer import (
    CallAttemptHangUpNoted,
    CallAttemptRecorded,
    CallAttemptStarted,
    CallRequestQueued,
    CampaignCancelled,
)
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CampaignId, CorrelationId, TenantId
from streams.standin.summary import summarise
from streams.summary.prompt import build_prompt, read_reply

T = datetime(2026, 11, 25, tzinfo=UTC)
CMP = CampaignId("cmp-1")


def _env(seq: int) -> dict[str, Any]:
    return {
        "tenant_id": TenantId("t"),
        "agent_id": AgentId("a"),
        "seq": seq,
        "event_id": derive_event_id("a", seq),
        "occurred_at": T,
        "correlation_id": CorrelationId("c"),
    }


def test_dialer_csv_rows_are_checked_one_by_one() -> None:
    rows = parse_csv("number,name\n+15550000001,Ann\nnope,Bob\n+15550000001,Cy\n\n+15550000002,Di\n")
    assert rows.accepted == [("+15550000001", {"name": "Ann"}), ("+15550000002", {"name": "Di"})]
    assert [(e.row, e.value, e.message) for e in rows.errors] == [
        (2, "nope", "not an E.164 number"),
        (3, "+15550000001", "repeats an earlier row"),
    ]


def test_dialer_campaign_cancel_finishes_waiting_requests_but_not_live_ones() -> None:
    batch = CampaignBatch(calls={})
    queued = [
        CallRequestQueued(
            **_env(i),
            call_id=CallId(f"c{i}"),
            idempotency_key=f"k{i}",
            to_number="+1555",
            priority=0,
            campaign_id=CMP,
        )
        for i in (1, 2, 3)
    ]
    for event in queued:
        fold(batch, event)
    fold(
        batch,
        CallAttemptStarted(
            **_env(4),
            call_id=CallId("c1"),
            attempt_call_id=CallId("c1"),
            attempt=1,
            to_number="+1555",
            from_number="+1556",
            agent_version=1,
            campaign_id=CMP,
        ),
    )
    fold(
        batch,
        CallAttemptRecorded(
            **_env(5),
            call_id=CallId("c1"),
            attempt_call_id=CallId("c1"),
            attempt=1,
            outcome="answered",
            campaign_id=CMP,
        ),
    )
    fold(batch, CampaignCancelled(**_env(6), campaign_id=CMP, dropped=2))
    stages = {c.call_id: (c.stage, c.answered) for c in batch.calls.values()}
    assert stages == {"c1": ("dialling", True), "c2": ("done", False), "c3": ("done", False)}
    assert batch.cancelled == [CMP]
    counts = {"dialling": 1, "done": 2, "answered": 1, "failed": 0}
    assert progress(counts, 3, False, True)["status"] == "cancelled"
    assert isinstance(next(iter(batch.calls.values())), CallStage)


def test_dialer_campaign_progress_is_unchanged_by_a_noted_hang_up() -> None:
    """The hang-up changes no stage: the attempt is dialling until its call ends (canceled)."""
    batch = CampaignBatch(calls={})
    fold(
        batch,
        CallRequestQueued(
            **_env(1),
            call_id=CallId("c1"),
            idempotency_key="k1",
            to_number="+1555",
            priority=0,
            campaign_id=CMP,
        ),
    )
    noted = CallAttemptHangUpNoted(
        **_env(2),
        call_id=CallId("c1"),
        attempt_call_id=CallId("c1"),
        attempt=1,
        ended_call_id=CallId("c1"),
        campaign_id=CMP,
    )
    fold(batch, noted)
    assert [c.row() for c in batch.calls.values()] == [
        {
            "call_id": "c1",
            "campaign_id": CMP,
            "tenant_id": "t",
            "stage": "queued",
            "answered": False,
            "failed": False,
        }
    ]


def test_dialer_summary_prompt_is_read_by_the_standin_and_its_reply_parsed() -> None:
    labels = ("booked", "cancelled", "unresolved")
    prompt = build_prompt([("caller", "Please book a table. Thanks."), ("agent", "It is booked.")], labels)
    verdict = read_reply('{"summary": "' + "x" + '", "outcome": "Booked"}', labels)
    assert summarise(prompt).outcome == "booked"
    assert (verdict.summary, verdict.outcome_label) == ("x", "booked")
    assert read_reply('{"summary": "y", "outcome": "sold"}', labels).outcome_label is None
