"""`POST /api/calls` end to end: API → dialer → fake Twilio → edge → calls worker ↔ Gemini stand-in."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import pytest
from dialer_readside import read_side
from dialer_rig import AUTH_TOKEN, DialerRig

from edge.audio.speech import synthesize, to_rate
from edge.twiml import media_stream_url
from infra.settings import Settings
from projections.call_projection import CallProjection
from schemas.call_media import TranscriptSegment
from schemas.dialer import CallAttemptRecorded, CallRequestCompleted
from schemas.ids import TenantId
from voiceagent.caller import SimulatedCaller, to_frames

pytestmark = pytest.mark.integration


async def _twiml(rig: DialerRig, number: str, timeout_s: float = 30) -> tuple[str, str]:
    """(call SID, TwiML) once the fake has fetched the edge's TwiML for a call to ``number``."""
    deadline = time.monotonic() + timeout_s
    while True:
        for call in rig.fake.calls.values():
            if call.to == number and call.sid in rig.fake.twiml:
                return call.sid, rig.fake.twiml[call.sid]
        assert time.monotonic() < deadline, "the fake never fetched the TwiML:\n" + rig.worker_logs()
        await asyncio.sleep(0.05)


async def test_dialer_api_call_rings_answers_holds_a_conversation_and_completes(
    rig: DialerRig, settings: Settings
) -> None:
    async with read_side(settings, CallProjection(name=f"calls-api-it-{uuid.uuid4().hex[:6]}")) as side:
        tenant = TenantId(side.tenant.tenant_id)
        agent, _ = await rig.publish_agent(tenant, max_concurrent_calls=1)
        await side.seed_agent(agent)
        number = f"+1557{uuid.uuid4().int % 10**7:07d}"
        rig.fake.fetch_twiml, rig.fake.answer_hold_s = True, None
        caller: SimulatedCaller | None = None
        try:
            placed = await side.client.post(
                "/api/calls", json={"agent_id": agent, "to_number": number}, headers=side.tenant.operator
            )
            assert placed.status_code in (201, 202), placed.text
            call_id = placed.headers["Location"].rsplit("/", 1)[-1]
            sid, twiml = await _twiml(rig, number)
            parameters = dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)"', twiml))
            assert parameters["call_id"] == call_id
            caller = SimulatedCaller(
                media_stream_url(rig.base), AUTH_TOKEN, stream_sid="MZ" + uuid.uuid4().hex, call_sid=sid
            )
            await caller.open(parameters)
            caller.say(to_frames(to_rate(*synthesize("Hello, who is calling please?"), 8000)))

            def agent_spoke() -> bool:
                said = rig.log.of(TranscriptSegment, call_id=call_id, speaker="agent")
                return bool(said) and caller is not None and len(caller.audio.heard) > 25

            await rig.log.wait_for(agent_spoke, timeout_s=60)
            await caller.hang_up()
            await rig.fake.complete(sid)
            await rig.log.wait_for(lambda: bool(rig.log.of(CallRequestCompleted, call_id=call_id)), 60)
        finally:
            rig.fake.fetch_twiml, rig.fake.answer_hold_s = False, 0.2
            if caller is not None and not caller.closed.is_set():
                await caller.hang_up()
        shown = await _shown(side.client, side.tenant.viewer, call_id)
    statuses = [c["CallStatus"] for c in rig.fake.calls[sid].callbacks]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    (answered,) = rig.log.of(CallAttemptRecorded, call_id=call_id)
    assert (answered.outcome, answered.twilio_call_sid) == ("answered", sid)
    (done,) = rig.log.of(CallRequestCompleted, call_id=call_id)
    assert (done.outcome, done.answered, done.attempts) == ("completed", True, 1)
    assert (shown["status"], shown["direction"], shown["to_number"]) == ("completed", "outbound", number)
    assert shown["answered_at"] is not None


async def _shown(client: Any, headers: dict[str, str], call_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        response = await client.get(f"/api/calls/{call_id}", headers=headers)
        if response.status_code == 200 and response.json()["ended_at"]:
            body: dict[str, Any] = response.json()
            return body
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.2)
