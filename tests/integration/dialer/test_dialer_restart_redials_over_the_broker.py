"""A dialer stopped between an attempt's start and its dial: after the restart, the attempt whose
call never reached the call log is reported not dialled and dialled again at once; the one whose
CallReceived is in the call log (Twilio may have been asked) is not dialled again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from dialer_rig import DialerRig, new_tenant, place_call

from schemas.agents import AgentVersionPublished
from schemas.calls import CallReceived
from schemas.catalog import CALL_INPUTS
from schemas.dialer import CallAttemptRecorded, CallAttemptStarted
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId
from streams.dialer.decider import DialerOptions, step
from streams.dialer.state import DialerState, observe_agent
from tests.integration.dialer.dialer_rig import agent_config

pytestmark = pytest.mark.integration


async def test_a_dial_stopped_before_the_call_log_is_dialled_again_after_a_restart(rig: DialerRig) -> None:
    tenant = new_tenant()
    agent, _ = await rig.publish_agent(tenant)
    # What the stopped dialer decided and logged, decided by its own decider: two attempts
    # started, neither reported; only the second one's call reached the call log.
    state = DialerState(tenant_id=tenant)
    observe_agent(
        state,
        AgentVersionPublished(
            tenant_id=tenant,
            agent_id=AgentId(agent),
            seq=2,
            event_id=derive_event_id(agent, 2),
            occurred_at=datetime.now(UTC),
            correlation_id=CorrelationId("test"),
            version=1,
            config=agent_config(),
        ),
    )
    numbers = [f"+1555{uuid.uuid4().int % 10**7:07d}" for _ in range(2)]
    calls = [CallId(f"call-{uuid.uuid4().hex[:12]}") for _ in numbers]
    events = []
    for call, number in zip(calls, numbers, strict=True):
        events += step(state, place_call(tenant, agent, number, call), DialerOptions())
    started = [e for e in events if isinstance(e, CallAttemptStarted)]
    assert [e.attempt_call_id for e in started] == calls
    for event in events:
        await rig.send(event)
    logged = started[1]
    await rig.send(
        CallReceived(
            tenant_id=tenant,
            call_id=logged.attempt_call_id,
            seq=0,
            event_id=derive_event_id(logged.attempt_call_id, 0, "dialer.call_received"),
            occurred_at=datetime.now(UTC),
            correlation_id=CorrelationId(logged.call_id),
            direction="outbound",
            from_number=logged.from_number,
            to_number=logged.to_number,
            agent_id=agent,
            agent_version=1,
            max_duration_s=600,
            silence_timeout_s=0,
        ),
        topic=CALL_INPUTS.name,
    )
    rig.restart_dialer()
    retry = CallId(f"{calls[0]}-a2")
    await rig.log.wait_for(lambda: bool(rig.log.of(CallAttemptStarted, attempt_call_id=retry)), timeout_s=60)
    await rig.log.wait_for(lambda: any(r["To"] == numbers[0] for r in rig.fake.create_requests), timeout_s=30)
    recorded = rig.log.of(CallAttemptRecorded, call_id=calls[0])
    assert [(r.attempt, r.outcome) for r in recorded] == [(1, "not_dialled")]
    assert [r["To"] for r in rig.fake.create_requests if r["To"] in numbers] == [numbers[0]]
    assert rig.log.of(CallAttemptRecorded, call_id=calls[1]) == []  # left to the call log
