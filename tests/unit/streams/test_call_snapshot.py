"""The worker's table snapshot of a call round-trips exactly, for any reachable state."""

import json
from dataclasses import replace

import pytest
from call_scenario import LIMITS, received, voicemail
from hypothesis import given, settings
from test_call_properties import input_sequences

from schemas.calls import CallInput
from streams.calls.machine import decide, evolve
from streams.calls.snapshot import Snapshot, dump, load
from streams.calls.state import CallState
from streams.calls.state import CallStatus as S


def _states(inputs: list[CallInput]) -> list[CallState]:
    states: list[CallState] = []
    state: CallState | None = None
    for input_ in inputs:
        for event in decide(state, input_, LIMITS):
            state = evolve(state, event)
            states.append(state)
    return states


@settings(max_examples=150, deadline=None)
@given(input_sequences())
def test_every_reachable_state_survives_the_snapshot(inputs: list[CallInput]) -> None:
    for offset, state in enumerate(_states(inputs)):
        snapshot = Snapshot(state=state, input_offset=offset, limits=LIMITS)
        assert load(dump(snapshot)) == snapshot
        assert dump(load(dump(snapshot))) == dump(snapshot)


def test_a_snapshot_from_before_voicemails_loads_without_one() -> None:
    state = _states([received(0), voicemail(1, "Call us back.")])[-1]
    snapshot = Snapshot(state=state, input_offset=3, limits=LIMITS)
    assert load(dump(snapshot)).state.voicemail_message == "Call us back."
    document = json.loads(dump(snapshot))
    del document["state"]["voicemail_message"]
    older = load(json.dumps(document).encode())
    assert older == Snapshot(state=replace(state, voicemail_message=None), input_offset=3, limits=LIMITS)


@pytest.mark.parametrize(("status", "heard"), [(S.CONNECTED, False), (S.IN_CONVERSATION, True)])
def test_a_snapshot_from_before_agent_heard_takes_a_conversation_as_heard(status: S, heard: bool) -> None:
    state = replace(_states([received(0)])[-1], status=status)
    document = json.loads(dump(Snapshot(state=state, input_offset=3, limits=LIMITS)))
    del document["state"]["agent_heard"]
    assert load(json.dumps(document).encode()).state.agent_heard is heard


def test_a_snapshot_from_before_call_variables_loads_with_none() -> None:
    state = _states([received(0, variables={"name": "Ann"})])[-1]
    snapshot = Snapshot(state=state, input_offset=3, limits=LIMITS)
    assert load(dump(snapshot)).state.variables == {"name": "Ann"}
    document = json.loads(dump(snapshot))
    for name in ("variables", "transcript_segments", "agent_utterances"):
        del document["state"][name]
    assert load(json.dumps(document).encode()).state == replace(state, variables={}, transcript_segments=0)


def test_the_transcript_tail_survives_the_snapshot_and_is_empty_in_older_ones() -> None:
    state = replace(
        _states([received(0)])[-1], transcript_tail=("caller: Hello?", "agent: Hi, how can I help?")
    )
    snapshot = Snapshot(state=state, input_offset=3, limits=LIMITS)
    assert load(dump(snapshot)) == snapshot
    document = json.loads(dump(snapshot))
    assert document["state"]["transcript_tail"] == ["caller: Hello?", "agent: Hi, how can I help?"]
    del document["state"]["transcript_tail"]
    assert load(json.dumps(document).encode()).state == replace(state, transcript_tail=())
