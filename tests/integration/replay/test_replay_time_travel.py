"""Time travel: the state folded from the log at a mid-call seq is the state the worker had then."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from infra.settings import Settings
from schemas.catalog import CALL_EVENTS
from schemas.codec import Codec
from schemas.ids import CallId
from streams.calls.machine import decide, evolve
from streams.calls.state import CallState
from tests.integration.readside.call_stream import unique
from tests.unit.streams import call_scenario as s
from voiceagent.timeline import load_events, travel

pytestmark = pytest.mark.integration


def _inputs(call_id: str) -> list[Any]:
    inputs = [
        s.received(0),
        s.stream_started(1),
        s.session_opened(1.2),
        s.agent_started(2),
        s.transcript(3, speaker="agent"),
        s.caller_started(3.5),
        s.interrupted(3.6),
        s.tool_requested(5),
        s.tool_completed(6),
        s.hang_up_requested(8),
        s.stream_stopped(9),
        s.recording(10),
    ]
    return [dataclasses.replace(i, call_id=CallId(call_id)) for i in inputs]


async def test_replay_time_travel_at_a_mid_call_seq_equals_the_state_the_worker_had_then(
    settings: Settings, producer: AIOKafkaProducer, codec: Codec
) -> None:
    call_id = unique("call-travel")
    state: CallState | None = None
    states: dict[int, CallState] = {}
    for input_ in _inputs(call_id):  # the worker: decide, publish, evolve, one input at a time
        for event in decide(state, input_, s.LIMITS):
            await producer.send_and_wait(CALL_EVENTS.name, codec.encode(event), call_id.encode())
            state = evolve(state, event)
            states[event.seq] = state
    assert len(states) >= 10

    events = await load_events(settings.kafka, call_id)

    assert [e.seq for e in events] == sorted(states)
    for seq, expected in states.items():
        assert travel(events, seq=seq).state == expected, f"seq {seq}"
    middle = sorted(states)[len(states) // 2]
    assert travel(events, seq=middle).state != travel(events).state  # a mid-call point, not the end
