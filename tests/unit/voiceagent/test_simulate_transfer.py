"""`call simulate --transfer-to`: the demo agent may transfer to its demo number, and a number the
agent does not list is refused before any call is placed (the tool would refuse it anyway)."""

from __future__ import annotations

import pytest

from api.agent_models import AgentConfigIn
from streams.writers.agent_rules import config_errors
from voiceagent.seed import DEMO_CONFIG, DEMO_TRANSFER_NUMBER
from voiceagent.simulate import SimulationError, _check_transfer_number


def test_the_demo_agent_is_valid_and_may_transfer_to_the_demo_transfer_number() -> None:
    record = AgentConfigIn.model_validate(DEMO_CONFIG).to_record()
    assert config_errors(record) == []
    assert record.transfer_numbers == (DEMO_TRANSFER_NUMBER,)


def test_a_listed_number_is_accepted() -> None:
    _check_transfer_number({"name": "demo", "config": DEMO_CONFIG}, DEMO_TRANSFER_NUMBER)


def test_a_number_the_agent_does_not_list_is_refused_naming_the_ones_it_does() -> None:
    with pytest.raises(SimulationError, match=r"only to \+15550123456, not \+19005550199"):
        _check_transfer_number({"name": "demo", "config": DEMO_CONFIG}, "+19005550199")


def test_an_agent_without_transfer_numbers_says_so() -> None:
    # A demo agent seeded before transfer_numbers existed has none: publish a version with one.
    with pytest.raises(SimulationError, match="has no transfer numbers"):
        _check_transfer_number({"name": "demo", "config": {"phone_numbers": ["+15550100000"]}}, "+1555")
