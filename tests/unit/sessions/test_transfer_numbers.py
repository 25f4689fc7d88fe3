"""transfer_call reaches only the agent's transfer_numbers: declared with them as the only
targets, not declared without any, and any other target refused by the tool itself (toll fraud:
a caller must not talk the model into dialling a premium-rate or international number)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from google.genai import types

from schemas.agents import ToolSpec
from streams.sessions.live_config import (
    DEFAULT_CONFIG,
    END_CALL,
    TRANSFER_CALL,
    SessionPlan,
    live_connect_config,
    tool_declarations,
)
from streams.sessions.tools import ToolContext, ToolError, ToolRunner

DESKS = ("+14155550123", "+442071838750")
WITH_DESKS = dataclasses.replace(DEFAULT_CONFIG, transfer_numbers=DESKS)


def _declared(config: Any) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in tool_declarations(config)}


def _context(config: Any) -> ToolContext:
    return ToolContext(tenant_id="t-1", agent_id="agent-1", call_id="call-1", config=config)


def test_an_agent_without_transfer_numbers_is_not_offered_transfer_call() -> None:
    declared = _declared(DEFAULT_CONFIG)
    assert TRANSFER_CALL not in declared
    assert END_CALL in declared


def test_an_agents_own_tool_named_transfer_call_is_not_declared_without_transfer_numbers() -> None:
    # The name is the built-in's: the built-in handler would run it, unconstrained targets and all.
    own = ToolSpec(name=TRANSFER_CALL, description="anywhere", parameters_json='{"type": "object"}')
    assert TRANSFER_CALL not in _declared(dataclasses.replace(DEFAULT_CONFIG, tools=(own,)))
    declared = _declared(dataclasses.replace(WITH_DESKS, tools=(own,)))
    assert declared[TRANSFER_CALL]["parameters"]["properties"]["target"]["enum"] == list(DESKS)


def test_transfer_call_is_declared_with_the_agents_numbers_as_the_only_targets() -> None:
    parameters = _declared(WITH_DESKS)[TRANSFER_CALL]["parameters"]
    assert parameters["required"] == ["target"]
    assert parameters["properties"]["target"]["type"] == "string"
    assert parameters["properties"]["target"]["enum"] == list(DESKS)


def test_google_genai_accepts_the_live_config_with_the_enum_and_keeps_it() -> None:
    config = types.LiveConnectConfig.model_validate(
        live_connect_config(SessionPlan(call_id="c", config=WITH_DESKS))
    )
    assert config.tools is not None
    declarations = config.tools[0].function_declarations  # type: ignore[union-attr]
    assert declarations is not None
    (transfer,) = [d for d in declarations if d.name == TRANSFER_CALL]
    assert transfer.parameters is not None
    assert transfer.parameters.properties is not None
    assert transfer.parameters.properties["target"].enum == list(DESKS)


@pytest.mark.parametrize("target", DESKS)
async def test_the_tool_transfers_to_a_listed_number(target: str) -> None:
    result = await ToolRunner(None).run(_context(WITH_DESKS), "fc-1", TRANSFER_CALL, {"target": target})
    assert result.transfer_target == target
    assert result.response == {"ok": True, "transferring_to": target}
    json.dumps(result.response)


@pytest.mark.parametrize(
    "target",
    [
        "+19005550199",  # premium rate
        "+882161234567",  # international networks
        "+14155550123 ",  # a listed number, almost
        "14155550123",
        "<Dial>+19005550199</Dial>",
        "sip:desk@example.com",
    ],
)
async def test_the_tool_refuses_a_number_that_is_not_listed(target: str) -> None:
    with pytest.raises(ToolError, match="not one of this agent's transfer numbers") as refused:
        await ToolRunner(None).run(_context(WITH_DESKS), "fc-1", TRANSFER_CALL, {"target": target})
    assert "+14155550123, +442071838750" in str(refused.value)  # the model hears what it may use


@pytest.mark.parametrize("args", [{}, {"target": ""}, {"target": 14155550123}])
async def test_the_tool_refuses_a_missing_target(args: dict[str, Any]) -> None:
    with pytest.raises(ToolError, match="needs a 'target'"):
        await ToolRunner(None).run(_context(WITH_DESKS), "fc-1", TRANSFER_CALL, args)


async def test_an_agent_without_transfer_numbers_cannot_transfer_whatever_the_model_sends() -> None:
    with pytest.raises(ToolError, match="no transfer numbers"):
        await ToolRunner(None).run(
            _context(DEFAULT_CONFIG), "fc-1", TRANSFER_CALL, {"target": "+19005550199"}
        )
