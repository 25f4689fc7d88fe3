"""An operator ending an outbound call that still rings: the dialer cancels it at Twilio."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from dialer_rig import DialerRig, new_tenant

from schemas.calls import CallEnded, EndCall, TelephonyStatusChanged
from schemas.dialer import CallAttemptHangUpNoted, CallAttemptRecorded, CallRequestCompleted
from schemas.ids import CallId, CorrelationId, EventId, TenantId

pytestmark = pytest.mark.integration

RING_S = 60.0
"""Longer than the test may take: only a cancel can stop the ringing in time."""


def _end(tenant: TenantId, call_id: CallId) -> EndCall:
    return EndCall(
        tenant_id=tenant,
        call_id=call_id,
        seq=0,
        event_id=EventId(str(uuid.uuid4())),
        occurred_at=datetime.now(UTC),
        correlation_id=CorrelationId(f"cmd-{uuid.uuid4().hex[:8]}"),
        requested_by="operator",
        reason="operator_ended",
    )


async def test_ending_a_ringing_outbound_call_cancels_it_at_twilio(rig: DialerRig) -> None:
    tenant = new_tenant()
    agent, _ = await rig.publish_agent(tenant)
    number = f"+1555{uuid.uuid4().int % 10**7:07d}"
    rig.fake.ring_s = RING_S
    try:
        call_id = await rig.place(tenant, agent, number)
        await rig.log.wait_for(
            lambda: bool(rig.log.of(TelephonyStatusChanged, call_id=call_id, status="ringing")), timeout_s=60
        )
        await rig.send(_end(tenant, call_id))
        # The attempt is recorded canceled at the hang-up; the call's end follows Twilio's cancel.
        await rig.log.wait_for(
            lambda: bool(
                rig.log.of(CallRequestCompleted, call_id=call_id) and rig.log.of(CallEnded, call_id=call_id)
            ),
            timeout_s=45,
        )
    finally:
        rig.fake.ring_s = 0.0
    (call,) = [c for c in rig.fake.calls.values() if c.to == number]
    assert call.status == "canceled"
    assert [cb["CallStatus"] for cb in call.callbacks] == ["initiated", "ringing", "canceled"]
    (ended,) = rig.log.of(CallEnded, call_id=call_id)
    assert ended.reason == "canceled"  # Twilio's answer to the cancel, not the settle timer giving up
    (attempt,) = rig.log.of(CallAttemptRecorded, call_id=call_id)
    assert (attempt.outcome, attempt.retry_at) == ("canceled", None)
    # The hang-up is in the dialer's log, so a restarted dialer still knows it (not retried).
    (noted,) = rig.log.of(CallAttemptHangUpNoted, call_id=call_id)
    assert (noted.attempt_call_id, noted.ended_call_id) == (call_id, call_id)
    assert rig.log.of(CallRequestCompleted, call_id=call_id)[0].outcome == "failed"
    assert len([r for r in rig.fake.create_requests if r["To"] == number]) == 1  # not dialled again
