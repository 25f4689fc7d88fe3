"""The routing fold: a number goes to the first agent still claiming it, never to a later claimant."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.routing import RoutingTable
from schemas.agents import AgentArchived
from tests.support.agents import agent_config, version_published
from tests.support.examples import example_record

NUMBER = "+15550001111"
OTHER = "+15550002222"


def _archived(agent_id: str) -> AgentArchived:
    return example_record(AgentArchived, agent_id=agent_id)


def test_another_tenants_later_claim_does_not_take_the_number() -> None:
    table = RoutingTable()
    table.apply(version_published("tenant-b", "agt_b", agent_config(NUMBER)))
    table.apply(version_published("tenant-a", "agt_a", agent_config(NUMBER)))  # the hijack
    route = table.lookup(NUMBER)
    assert route is not None
    assert (route.tenant_id, route.agent_id) == ("tenant-b", "agt_b")


def test_within_a_tenant_the_latest_claim_takes_the_number() -> None:
    table = RoutingTable()
    table.apply(version_published("t", "agt_1", agent_config(NUMBER)))
    table.apply(version_published("t", "agt_2", agent_config(NUMBER)))  # moved to the new desk
    assert table.lookup(NUMBER).agent_id == "agt_2"  # type: ignore[union-attr]
    table.apply(_archived("agt_2"))
    assert table.lookup(NUMBER).agent_id == "agt_1"  # type: ignore[union-attr]


def test_the_next_claimant_takes_over_when_the_holder_lets_go() -> None:
    table = RoutingTable()
    table.apply(version_published("t", "agt_1", agent_config(NUMBER, OTHER)))
    table.apply(version_published("u", "agt_2", agent_config(NUMBER)))
    table.apply(version_published("t", "agt_1", agent_config(OTHER), version=2))  # moves NUMBER on
    assert table.lookup(NUMBER).agent_id == "agt_2"  # type: ignore[union-attr]
    assert table.lookup(OTHER).agent_version == 2  # type: ignore[union-attr]
    table.apply(_archived("agt_2"))
    assert table.lookup(NUMBER) is None
    assert len(table) == 1


def test_a_new_version_keeps_its_place_and_routes_to_itself() -> None:
    table = RoutingTable()
    table.apply(version_published("t", "agt_1", agent_config(NUMBER)))
    table.apply(version_published("u", "agt_2", agent_config(NUMBER)))
    table.apply(version_published("t", "agt_1", agent_config(NUMBER), version=2))
    route = table.lookup(NUMBER)
    assert route is not None
    assert (route.agent_id, route.agent_version) == ("agt_1", 2)


_TENANT_OF = {"agt_1": "t", "agt_2": "t", "agt_3": "u"}
_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["agt_1", "agt_2", "agt_3"]),
        st.one_of(st.none(), st.sets(st.sampled_from([NUMBER, OTHER]))),  # None: archived
    ),
    max_size=20,
)


@given(_EVENTS)
def test_every_number_routes_to_an_agent_whose_latest_version_claims_it(events: list) -> None:  # type: ignore[type-arg]
    # Agents of two tenants: within "t" the latest claim takes a number, "u" waits for "t" to
    # let go (and the other way round). With one tenant only, "a holder" was all one could check.
    table, claims, versions = RoutingTable(), {}, {}
    for agent_id, numbers in events:
        before = {number: table.lookup(number) for number in (NUMBER, OTHER)}
        had = claims.get(agent_id, set())
        if numbers is None:
            table.apply(_archived(agent_id))
            claims.pop(agent_id, None)
        else:
            versions[agent_id] = versions.get(agent_id, 0) + 1
            config = agent_config(*sorted(numbers))
            table.apply(version_published(_TENANT_OF[agent_id], agent_id, config, version=versions[agent_id]))
            claims[agent_id] = numbers
        for number in (NUMBER, OTHER):
            route, held = table.lookup(number), before[number]
            holders = {a for a, numbers in claims.items() if number in numbers}
            assert (route is None) == (not holders)
            if route is None:
                continue
            assert route.agent_id in holders
            assert route.agent_version == versions[route.agent_id]
            assert route.tenant_id == _TENANT_OF[route.agent_id]
            if held is not None and held.tenant_id != route.tenant_id:
                assert held.agent_id not in holders, "another tenant took a number still held"
            new_claim = numbers is not None and number in numbers and number not in had
            if new_claim and (held is None or held.tenant_id == _TENANT_OF[agent_id]):
                assert route.agent_id == agent_id, "the tenant's latest claim did not take the number"
