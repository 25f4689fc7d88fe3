"""Campaigns through the API: a CSV of numbers dialled by the real dialer, progress from the read model."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from dialer_readside import ReadSide, read_side
from dialer_rig import CODEC, DNC_NUMBER, DialerRig

from infra.settings import Settings
from projections.campaign_projection import CampaignProjection
from schemas.catalog import CALL_INPUTS, DIALER_REQUESTS
from schemas.dialer import CallAttemptStarted, CallRequestCompleted
from schemas.ids import TenantId
from streams.dialer.app import read_all

pytestmark = pytest.mark.integration


async def _progress(side: ReadSide, campaign_id: str) -> dict[str, Any] | None:
    response = await side.client.get(f"/api/campaigns/{campaign_id}", headers=side.tenant.viewer)
    if response.status_code == 404:  # the projection has not seen CampaignCreated yet
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _until(
    side: ReadSide, campaign_id: str, check: Any, timeout_s: float, rig: DialerRig | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        progress = await _progress(side, campaign_id)
        if progress is not None and check(progress):
            return progress
        if time.monotonic() >= deadline:
            raise AssertionError(json.dumps(progress, indent=1) + await _unfinished(rig, campaign_id))
        await asyncio.sleep(0.25)


async def _unfinished(rig: DialerRig | None, campaign_id: str) -> str:
    """What the log holds for the campaign's requests that never completed, to tell where they stuck."""
    if rig is None:
        return ""
    started = {r.call_id: r for r in rig.log.of(CallAttemptStarted) if r.campaign_id == campaign_id}
    completed = {r.call_id for r in rig.log.of(CallRequestCompleted) if r.campaign_id == campaign_id}
    stuck = sorted(set(started) - completed)
    inputs = await read_all(rig.settings, CODEC, (CALL_INPUTS.name, DIALER_REQUESTS.name))
    lines = []
    for call_id in stuck:
        attempt = started[call_id]
        ids = {call_id, attempt.attempt_call_id}
        mine = [
            r
            for r in [*rig.log.records, *inputs]
            if ids & {getattr(r, "call_id", None), getattr(r, "attempt_call_id", None)}
        ]
        placed = [c for c in rig.fake.calls.values() if c.to == attempt.to_number]
        lines.append(f"{call_id}:\n" + "\n".join("  " + repr(r)[:300] for r in mine))
        lines.append(f"  stand-in calls: {[(c.sid, c.status, c.callbacks) for c in placed]}")
    return "\nunfinished requests:\n" + "\n".join(lines) + "\nworker logs:\n" + rig.log.logs()[-1500:]


async def test_dialer_campaign_of_1000_numbers_completes_with_correct_progress(
    rig: DialerRig, settings: Settings
) -> None:
    async with read_side(settings, CampaignProjection(name="campaigns-it")) as side:
        tenant = TenantId(side.tenant.tenant_id)
        agent, config = await rig.publish_agent(tenant, max_concurrent_calls=40)
        await side.seed_agent(agent)
        numbers = [f"+1556{i:07d}" for i in range(998)] + [DNC_NUMBER]
        bad = ["555-0100", "+1556" + "0" * 7]  # not E.164; a repeat of row 1
        csv = "to_number,first_name\n" + "".join(
            f"{n},Pat{i}\n" for i, n in enumerate(numbers[:500] + bad + numbers[500:] + ["+15569999999"])
        )
        rig.fake.answer_hold_s = 0.0
        try:
            created = await side.client.post(
                "/api/campaigns",
                params={"agent_id": agent, "name": "Reminders"},
                content=csv.encode(),
                headers=side.tenant.operator | {"Content-Type": "text/csv"},
            )
            assert created.status_code in (201, 202), created.text
            body = created.json()
            assert (body["accepted"], body["rejected"]) == (1000, 2)
            assert [(e["row"], e["message"]) for e in body["errors"]] == [
                (501, "not an E.164 number"),
                (502, "repeats an earlier row"),
            ]
            campaign_id = body["campaign_id"]
            done = await _until(
                side, campaign_id, lambda p: p["status"] == "completed", timeout_s=90, rig=rig
            )
        finally:
            rig.fake.answer_hold_s = 0.2
    figures = {k: done[k] for k in ("status", "total", "queued", "dialling", "answered", "failed", "done")}
    # The do-not-call number is refused by the dialer; every other number is answered and completed.
    assert figures == {
        "status": "completed",
        "total": 1000,
        "queued": 0,
        "dialling": 0,
        "answered": 999,
        "failed": 1,
        "done": 1000,
    }
    assert rig.fake.live_peak[config.phone_numbers[0]] <= 40


async def test_dialer_campaign_pause_stops_new_dials_resume_continues_and_cancel_ends_it(
    rig: DialerRig, settings: Settings
) -> None:
    async with read_side(settings, CampaignProjection(name="campaigns-switch-it")) as side:
        tenant = TenantId(side.tenant.tenant_id)
        agent, _config = await rig.publish_agent(tenant, max_concurrent_calls=2)
        await side.seed_agent(agent)
        prefix = f"+1557{int(time.time() * 1000) % 1000:03d}"
        numbers = [f"{prefix}{i:04d}" for i in range(40)]

        def placed() -> int:
            return sum(1 for r in rig.fake.create_requests if str(r.get("To", "")).startswith(prefix))

        async def placements_settle() -> int:
            # Calls decided before the switch may still be placed; after that, nothing new.
            await asyncio.sleep(1.5)
            before = placed()
            await asyncio.sleep(2.0)
            assert placed() == before, "the dialer kept placing calls of a paused or cancelled campaign"
            return before

        async def switch(action: str, status: str) -> dict[str, Any]:
            response = await side.client.post(
                f"/api/campaigns/{campaign_id}/{action}", headers=side.tenant.operator
            )
            assert response.status_code in (200, 202), response.text
            return await _until(side, campaign_id, lambda p: p["status"] == status, timeout_s=30)

        created = await side.client.post(
            "/api/campaigns",
            json={"agent_id": agent, "name": "Switches", "numbers": numbers},
            headers=side.tenant.operator,
        )
        assert created.status_code in (201, 202), created.text
        campaign_id = created.json()["campaign_id"]
        await _until(side, campaign_id, lambda p: p["done"] >= 2, timeout_s=60)

        await switch("pause", "paused")
        paused_at = await placements_settle()
        assert paused_at < len(numbers)

        await switch("resume", "running")
        await _until(side, campaign_id, lambda p: p["done"] >= paused_at + 2, timeout_s=60)
        assert placed() > paused_at

        cancelled = await switch("cancel", "cancelled")
        cancelled_at = await placements_settle()
        assert cancelled_at < len(numbers)
        assert cancelled["total"] == len(numbers)
