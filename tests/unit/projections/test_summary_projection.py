"""The post-call projection keys summaries and failures apart (their rows: tests/integration/readside)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from projections.summary_projection import SummaryProjection
from schemas.dialer import CallSummarized, CallSummaryFailed, WebhookDeliveryAttempted
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, TenantId
from tests.support.examples import example_record

T0 = datetime(2026, 11, 26, tzinfo=UTC)
CALL = CallId("call_1")
ENV: dict[str, Any] = {
    "tenant_id": TenantId("t1"),
    "call_id": CALL,
    "seq": 1,
    "occurred_at": T0,
    "correlation_id": CorrelationId("call_1"),
    "agent_id": AgentId("agt_1"),
    "model": "m",
}
FAILED = CallSummaryFailed(
    **ENV, event_id=derive_event_id(CALL, 1, "postcall.summary_failed"), reason="503", attempts=3
)
SUMMARIZED = CallSummarized(**ENV, event_id=derive_event_id(CALL, 1, "postcall.summary"), summary="ok")


def test_a_failed_summary_does_not_hold_back_a_summary_with_the_same_seq() -> None:
    projection = SummaryProjection()
    failed_key, _ = projection.aggregate_of(FAILED)
    summary_key, seq = projection.aggregate_of(SUMMARIZED)
    assert failed_key != summary_key
    assert (summary_key, seq) == ("summary:call_1", 1)


def test_webhook_attempts_are_read_past_without_a_position() -> None:
    # Each attempt used to keep a position row of its own, never read again.
    assert SummaryProjection().aggregate_of(example_record(WebhookDeliveryAttempted)) is None
