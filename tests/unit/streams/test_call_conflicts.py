"""Facts that contradict the call they name are set aside with the reason, never dropped unseen."""

from __future__ import annotations

import dataclasses

from call_scenario import OTHER_TENANT, ShellPartition, received, telephony

from schemas.calls import EndCall
from schemas.codec import Codec
from schemas.ids import AgentId, EventId

CODEC = Codec.single_object()


async def _known_call() -> ShellPartition:
    partition = ShellPartition()
    await partition.feed(received(0, direction="outbound"))
    return partition


async def test_another_tenants_call_received_for_a_known_call_id_is_a_conflict() -> None:
    partition = await _known_call()
    before = partition.stored
    theirs = dataclasses.replace(
        received(5, direction="outbound"),
        tenant_id=OTHER_TENANT,
        agent_id=AgentId("their-agent"),
        event_id=EventId("other"),
    )
    outcome = await partition.feed(theirs)
    assert outcome.conflict is not None
    assert "another tenant" in outcome.conflict
    assert (outcome.emitted, partition.stored) == (0, before)


async def test_a_call_received_naming_another_agent_is_a_conflict() -> None:
    partition = await _known_call()
    conflicting = dataclasses.replace(
        received(5, direction="outbound"), agent_id=AgentId("another-agent"), event_id=EventId("second")
    )
    outcome = await partition.feed(conflicting)
    assert outcome.conflict is not None
    assert "differs from the call received first" in outcome.conflict


async def test_a_repeated_call_received_for_the_same_call_is_quietly_ignored() -> None:
    # Twilio retries a voice webhook: the same call, the same agent, a new event id.
    partition = await _known_call()
    again = dataclasses.replace(received(5, direction="outbound"), event_id=EventId("retry"))
    outcome = await partition.feed(again)
    assert (outcome.conflict, outcome.error, outcome.emitted) == (None, None, 0)


async def test_another_tenants_status_fact_is_a_conflict() -> None:
    partition = await _known_call()
    outcome = await partition.feed(dataclasses.replace(telephony(3, "completed"), tenant_id=OTHER_TENANT))
    assert outcome.conflict is not None
    assert outcome.emitted == 0


async def test_another_tenants_end_call_is_still_a_recorded_rejection() -> None:
    # Commands answer with CommandRejected, which the API reads back; they are no conflict.
    partition = await _known_call()
    base = received(0, direction="outbound")
    command = EndCall(
        tenant_id=OTHER_TENANT,
        call_id=base.call_id,
        seq=0,
        event_id=EventId("end-1"),
        occurred_at=base.occurred_at,
        correlation_id=base.correlation_id,
        requested_by="api",
        reason="done",
    )
    outcome = await partition.feed(command)
    assert outcome.conflict is None
    assert outcome.emitted == 1
    assert type(CODEC.decode(partition.emitted[-1])).__name__ == "CommandRejected"
