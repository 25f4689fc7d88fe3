"""Bridge tokens: single-call, and once the call ends a late worker is told so, not reported."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from edge.node import SPENT_TOKENS_KEPT, EdgeNode, TokenCheck
from edge.publisher import RecordingPublisher
from edge.telephony import RecordingTelephony
from infra.settings import Settings

if TYPE_CHECKING:
    from edge.call import LiveCall

A_CALL = cast("LiveCall", object())  # the node only keeps it


def _node() -> EdgeNode:
    return EdgeNode(Settings(env="test"), publisher=RecordingPublisher(), telephony=RecordingTelephony())


def test_a_live_calls_token_opens_its_bridge_only() -> None:
    node = _node()
    grant = node.grant("call-1")
    node.register("call-1", A_CALL)
    assert node.check_token("call-1", grant.token) == TokenCheck.OK
    assert node.check_token("call-1", "forged") == TokenCheck.BAD
    assert node.check_token("call-1", None) == TokenCheck.BAD
    assert node.check_token("call-2", grant.token) == TokenCheck.GONE


def test_an_ended_calls_own_token_is_told_the_call_ended_and_any_other_is_gone() -> None:
    node = _node()
    grant = node.grant("call-1")
    node.register("call-1", A_CALL)
    node.unregister("call-1")
    assert node.check_token("call-1", grant.token) == TokenCheck.ENDED
    assert node.check_token("call-1", "forged") == TokenCheck.GONE
    assert node.check_token("call-1", None) == TokenCheck.GONE


def test_only_the_latest_ended_calls_tokens_are_kept() -> None:
    node = _node()
    tokens = {}
    for n in range(SPENT_TOKENS_KEPT + 1):
        call_id = f"call-{n}"
        tokens[call_id] = node.grant(call_id).token
        node.register(call_id, A_CALL)
        node.unregister(call_id)
    assert node.check_token("call-0", tokens["call-0"]) == TokenCheck.GONE  # the oldest, forgotten
    assert node.check_token("call-1", tokens["call-1"]) == TokenCheck.ENDED
