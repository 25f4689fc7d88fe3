"""A request is dialled from its caller id only while that number is one of its agent's."""

from __future__ import annotations

from dialer_scenario import AGENT, TENANT, campaign, ended, given_agents, kinds, place, published, run, tick

from schemas.dialer import CreateCampaign, DialerRequestRejected
from streams.dialer.state import DialerState, observe_agent

OURS, SPARE, FOREIGN = "+15550000001", "+15550000002", "+19998887777"


def _refusal(events: list[object]) -> DialerRequestRejected:
    (rejected,) = [e for e in events if isinstance(e, DialerRequestRejected)]
    return rejected


def test_a_request_that_overtook_its_agent_is_not_dialled_from_a_number_not_the_agent_s() -> None:
    state = DialerState(tenant_id=TENANT)
    assert kinds(run(state, place("x", 0, from_number=FOREIGN))) == ["CallRequestQueued"]
    observe_agent(state, published())
    events = run(state, tick(1))
    assert "CallAttemptStarted" not in kinds(events)
    refused = _refusal(events)
    assert (refused.call_id, refused.reason) == ("x", "invalid_number")
    assert FOREIGN in (refused.detail or "")
    assert state.requests == {}
    assert not state.queue


def test_a_number_a_later_agent_version_dropped_is_not_dialled_from() -> None:
    state = given_agents(published(phone_numbers=(OURS, SPARE), calling_window="09:00-10:00"))
    assert kinds(run(state, place("y", 0, from_number=SPARE))) == ["CallRequestQueued"]  # 12:00: waits
    observe_agent(state, published(version=2, phone_numbers=(OURS,), calling_window="09:00-10:00"))
    events = run(state, tick(21 * 3600 + 1))  # 09:00:01 the next day
    assert kinds(events) == ["DialerRequestRejected"]
    assert _refusal(events).reason == "invalid_number"
    assert "version 2" in (_refusal(events).detail or "")


def test_a_retry_from_a_dropped_number_is_refused_and_its_campaign_counts_it_done() -> None:
    state = given_agents(published(phone_numbers=(OURS, SPARE)))
    base = place("z")
    env = {k: getattr(base, k) for k in ("tenant_id", "seq", "event_id", "occurred_at", "correlation_id")}
    cid = campaign("camp-1")
    run(state, CreateCampaign(**env, agent_id=AGENT, campaign_id=cid, name="spring", total=1))
    run(state, place("z", 0, from_number=SPARE, campaign=cid), ended("z", "busy", 5))
    assert state.requests["z"].attempts == 1  # a retry is due at 15 s
    observe_agent(state, published(version=2, phone_numbers=(OURS,)))
    events = run(state, tick(20))
    assert kinds(events) == ["DialerRequestRejected"]
    progress = state.campaigns[cid]
    assert (progress.queued, progress.dialling, progress.done, progress.failed) == (0, 0, 1, 1)


def test_a_number_still_the_agent_s_is_dialled_from() -> None:
    state = DialerState(tenant_id=TENANT)
    run(state, place("w", 0, from_number=SPARE))
    observe_agent(state, published(phone_numbers=(OURS, SPARE)))
    assert kinds(run(state, tick(1))) == ["CallAttemptStarted"]
