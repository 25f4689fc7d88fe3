"""A call the model could not summarise shows why in the read model; a summary always wins."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.app import create_app
from infra.settings import Settings
from projections import dialer_queries
from projections.models import Call
from projections.runner import UnappliableError
from projections.summary_projection import SummaryProjection
from schemas.dialer import CallSummarized, CallSummaryFailed
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, TenantId
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.platform import make_tenant

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


def _env(call_id: str, at: datetime) -> dict[str, Any]:
    return {
        "tenant_id": TenantId("t1"),
        "call_id": CallId(call_id),
        "seq": 1,
        "occurred_at": at,
        "correlation_id": CorrelationId(call_id),
        "agent_id": AgentId("agt_1"),
        "model": "gemini-x",
    }


def _failed(call_id: str, at: datetime = T0) -> CallSummaryFailed:
    event_id = derive_event_id(call_id, 1, "postcall.summary_failed")
    return CallSummaryFailed(**_env(call_id, at), event_id=event_id, reason="HTTP 503", attempts=3)


def _summarized(call_id: str, at: datetime = T0) -> CallSummarized:
    event_id = derive_event_id(call_id, 1, "postcall.summary")
    return CallSummarized(
        **_env(call_id, at), event_id=event_id, summary="Booked a table.", outcome_label="booked"
    )


async def test_rs_summary_failures_and_successes_in_either_order(settings: Settings) -> None:
    projection = SummaryProjection()
    schema = await migrated_schema(settings)
    later = T0 + timedelta(minutes=1)
    async with schema_sessions(settings, schema) as sessions:
        async with sessions() as session, session.begin():
            for record in (
                _failed("only-failed"),
                _failed("failed-then-summarized"),
                _summarized("failed-then-summarized", later),
                _summarized("summarized-then-failed"),
                _failed("summarized-then-failed", later),
            ):
                await projection.apply(session, record)
        async with sessions() as session:
            rows = {c: await dialer_queries.call_summary(session, "t1", c) for c in (
                "only-failed", "failed-then-summarized", "summarized-then-failed"
            )}  # fmt: skip
            other_tenant = await dialer_queries.call_summary(session, "t2", "only-failed")
    failed = rows["only-failed"]
    assert failed is not None
    assert (failed["status"], failed["summary"], failed["failure_reason"]) == (
        "failed",
        None,
        "HTTP 503 (after 3 attempts)",
    )
    for call_id in ("failed-then-summarized", "summarized-then-failed"):
        row = rows[call_id]
        assert row is not None
        assert (row["status"], row["summary"], row["failure_reason"]) == (
            "summarized",
            "Booked a table.",
            None,
        )
    assert other_tenant is None


async def test_rs_the_api_shows_why_a_call_has_no_summary(settings: Settings) -> None:
    schema = await migrated_schema(settings)
    async with schema_sessions(settings, schema) as sessions:
        tenant = await make_tenant(sessions)
        record = dataclasses.replace(_failed("call-no-summary"), tenant_id=TenantId(tenant.tenant_id))
        async with sessions() as session, session.begin():
            session.add(
                Call(
                    call_id="call-no-summary",
                    tenant_id=tenant.tenant_id,
                    direction="inbound",
                    status="completed",
                    started_at=T0,
                    ended_at=T0 + timedelta(minutes=2),
                    last_seq=9,
                    updated_at=T0 + timedelta(minutes=2),
                )
            )
            await SummaryProjection().apply(session, record)
        app = create_app(settings, engine=sessions.kw["bind"], producer=None)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                response = await client.get("/api/calls/call-no-summary", headers=tenant.viewer)
                listed = await client.get("/api/calls", headers=tenant.viewer)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = (None, "failed", "HTTP 503 (after 3 attempts)")
    assert (body["summary"], body["summary_status"], body["summary_error"]) == expected
    (item,) = listed.json()["items"]
    assert (item["summary"], item["summary_status"], item["summary_error"]) == expected


async def test_rs_another_tenants_summary_of_a_call_is_refused(settings: Settings) -> None:
    projection = SummaryProjection()
    schema = await migrated_schema(settings)
    forged = dataclasses.replace(_summarized("owned-by-t1"), tenant_id=TenantId("t2"))
    async with schema_sessions(settings, schema) as sessions:
        async with sessions() as session, session.begin():
            await projection.apply(session, _failed("owned-by-t1"))
        for record in (forged, dataclasses.replace(_failed("owned-by-t1"), tenant_id=TenantId("t2"))):
            async with sessions() as session, session.begin():
                with pytest.raises(UnappliableError, match="another tenant"):
                    await projection.apply(session, record)
        async with sessions() as session:
            kept = await dialer_queries.call_summary(session, "t1", "owned-by-t1")
            taken = await dialer_queries.call_summary(session, "t2", "owned-by-t1")
    assert kept is not None
    assert kept["status"] == "failed"
    assert taken is None
