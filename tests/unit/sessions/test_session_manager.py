"""The session manager starts no second session on a token whose stream has ended, however late
the call's state says so; a call taken over by another worker may come back; a call gets its
session before its stream (pre-warm) once it has arrived or been answered, never while ringing."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from google.genai import errors, types
from session_fakes import FakeEdge, FakeGemini, FakeSink, eventually, live_call_state

from schemas import bridge
from streams.calls.state import CallState, CallStatus
from streams.sessions.directory import AgentDirectory
from streams.sessions.manager import SessionManager
from streams.sessions.tools import ToolRunner
from tests.support.agents import agent_config, version_published

pytestmark = pytest.mark.asyncio


def _before_the_stream(state: CallState, status: CallStatus, direction: str = "inbound") -> CallState:
    """The same call before Twilio has started its media stream."""
    return dataclasses.replace(state, status=status, direction=direction, stream=None)


def _manager(
    live_sessions: int,
    *,
    gemini: FakeGemini | None = None,
    prewarm: bool = True,
    directory: AgentDirectory | None = None,
    sink: FakeSink | None = None,
    config_wait_s: float = 0,
) -> SessionManager:
    """A manager whose model accepts this many Live connections."""
    gemini = gemini or FakeGemini()
    for _ in range(live_sessions):
        gemini.live()
    return SessionManager(
        directory=directory or AgentDirectory(),
        connect_live=gemini.connect,
        facts=sink or FakeSink(),
        tools=ToolRunner(None),
        worker_id="w-1",
        config_wait_s=config_wait_s,
        replaced_hold_s=0,
        prewarm=prewarm,
    )


async def _settled(manager: SessionManager) -> None:
    await eventually(lambda: not manager.active)


async def _talk_until_the_stream_stops(manager: SessionManager, edge: FakeEdge, state: CallState) -> None:
    """Start the call's session, let the edge end its stream, wait for the session to end."""
    manager.ensure(state)
    await edge.connected.wait()
    await edge.stop_stream()
    await _settled(manager)


class _Later:
    """``time`` for the manager, a minute on: every hold it set has run out."""

    @staticmethod
    def monotonic() -> float:
        return time.monotonic() + 60.0


async def test_a_late_live_state_after_the_stream_ended_starts_no_second_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manager = _manager(2)
    async with FakeEdge() as edge:
        state = live_call_state(edge.url)
        await _talk_until_the_stream_stops(manager, edge, state)

        # Long after, the clock ticks the call again: its MediaStreamStopped is still queued
        # behind other inputs, so the table says live.
        monkeypatch.setattr("streams.sessions.manager.time", _Later)
        manager.ensure(state)
        await asyncio.sleep(0.1)

        assert not manager.active
        assert len(edge.connections) == 1  # no reconnect to a stream the edge has forgotten


async def test_a_new_stream_of_the_same_call_gets_a_session() -> None:
    manager = _manager(1)
    async with FakeEdge() as edge:
        await _talk_until_the_stream_stops(manager, edge, live_call_state(edge.url))

        manager.ensure(live_call_state(edge.url, token="token-of-the-next-stream"))

        assert manager.active == {"call-1"}
        await _settled(manager)  # the fake edge refuses that token: the session ends by itself


async def test_a_call_taken_over_by_another_worker_is_restarted_when_it_comes_back() -> None:
    manager = _manager(2)
    async with FakeEdge() as edge:
        state = live_call_state(edge.url)
        manager.ensure(state)
        await edge.connected.wait()
        await edge.connections[-1].close(bridge.CLOSE_REPLACED, "replaced by a newer worker connection")
        await _settled(manager)

        manager.ensure(state)  # the partition came back to this worker, same stream, same token

        await eventually(lambda: len(edge.connections) == 2)
        await edge.stop_stream()
        await _settled(manager)


async def test_the_ended_token_is_forgotten_once_the_call_is_seen_ended() -> None:
    manager = _manager(2)
    async with FakeEdge() as edge:
        state = live_call_state(edge.url)
        await _talk_until_the_stream_stops(manager, edge, state)
        manager.ensure(dataclasses.replace(state, status=CallStatus.ENDED))

        manager.ensure(state)  # nothing is kept about it: a live state is a new decision

        await eventually(lambda: len(edge.connections) == 2)
        await edge.stop_stream()
        await _settled(manager)


async def test_an_inbound_call_gets_its_session_before_its_stream_and_keeps_it() -> None:
    gemini = FakeGemini()
    manager = _manager(1, gemini=gemini)
    async with FakeEdge() as edge:
        live_call = live_call_state(edge.url)
        manager.ensure(_before_the_stream(live_call, CallStatus.RECEIVED))
        await gemini.opened.wait()
        assert manager.active == {"call-1"}
        assert edge.connections == []

        manager.ensure(live_call)  # the stream has started: the same session takes its bridge
        await edge.connected.wait()
        await edge.stop_stream()
        await _settled(manager)
        manager.ensure(live_call)  # late: the stream that session talked through has ended
        await asyncio.sleep(0.1)

    assert len(gemini.configs) == 1
    assert len(edge.connections) == 1
    assert not manager.active


@pytest.mark.parametrize("status", [CallStatus.DIALING, CallStatus.RINGING, CallStatus.CONNECTED])
async def test_an_outbound_call_gets_no_session_before_its_stream(status: CallStatus) -> None:
    # Not while it rings (most would not need one), nor once answered: the answering-machine
    # verdict comes with the answer, and a pre-warmed session would greet the machine.
    gemini = FakeGemini()
    manager = _manager(1, gemini=gemini)
    manager.ensure(_before_the_stream(live_call_state("ws://unused"), status, direction="outbound"))
    assert not manager.active
    assert gemini.configs == []


async def test_a_stream_that_starts_while_the_session_waits_for_its_agent_is_taken_at_once() -> None:
    # The call outran its agent's version on the agent events topic: the pre-warmed session's
    # task is waiting for the config when the stream starts. No later state of the call comes
    # (no tick, no other input); the task must take the stream itself once the config is in.
    gemini, directory = FakeGemini(), AgentDirectory()
    manager = _manager(1, gemini=gemini, directory=directory, config_wait_s=5.0)
    async with FakeEdge() as edge:
        live_call = live_call_state(edge.url)
        manager.ensure(_before_the_stream(live_call, CallStatus.RECEIVED))
        manager.ensure(live_call)
        await asyncio.sleep(0.05)
        assert gemini.configs == []  # still waiting for the agent

        await directory.learn(version_published("t-1", "agent-1", agent_config(greeting="Hi.")))

        await asyncio.wait_for(edge.connected.wait(), 2.0)
        await edge.stop_stream()
        await _settled(manager)
    assert len(gemini.configs) == 1


async def _stopped_unheard(gemini: FakeGemini, sink: FakeSink, state: CallState) -> SessionManager:
    """A manager whose pre-warmed session of the call issued "h-first", then was stopped by a
    revocation before the call's stream started; its model takes one more Live connection."""
    directory = AgentDirectory()
    directory.apply(version_published("t-1", "agent-1", agent_config(greeting="Hello from Acme.")))
    manager = _manager(2, gemini=gemini, directory=directory, sink=sink)
    manager.ensure(_before_the_stream(state, CallStatus.RECEIVED))
    await eventually(lambda: bool(gemini.started))
    gemini.started[0].push(session_resumption_update={"new_handle": "h-first", "resumable": True})
    await eventually(lambda: bool(sink.of("ResumptionHandleUpdated")))
    await manager.stop_all()
    return manager


async def _talk_once(manager: SessionManager, edge: FakeEdge, state: CallState) -> None:
    manager.ensure(state)
    await edge.connected.wait()
    await edge.stop_stream()
    await _settled(manager)


async def test_after_a_pre_warmed_session_is_stopped_unheard_the_streams_session_greets_afresh() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    async with FakeEdge() as edge:
        live_call = live_call_state(edge.url)
        manager = await _stopped_unheard(gemini, sink, live_call)
        # The partition came back; the call's state has its stream now, and the first session's
        # handle: resuming it would skip a greeting the caller never heard.
        await _talk_once(
            manager, edge, dataclasses.replace(live_call, session_open=True, resumption_handle="h-first")
        )
    assert len(gemini.configs) == 2
    assert "h-first" not in repr(gemini.configs[-1])
    assert [p.texts for p in gemini.started] == [["Greet the caller: Hello from Acme."]] * 2


async def test_a_call_that_went_on_elsewhere_since_is_resumed_not_greeted_again() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    async with FakeEdge() as edge:
        live_call = live_call_state(edge.url)
        manager = await _stopped_unheard(gemini, sink, live_call)
        # Another worker had the call meanwhile: its stream's session greeted (the greeting's
        # mark came back) and issued a newer handle; now the partition is back here.
        went_on = dataclasses.replace(
            live_call, session_open=True, resumption_handle="h-later", agent_heard=True
        )
        await _talk_once(manager, edge, went_on)
    assert "h-later" in repr(gemini.configs[-1])
    assert gemini.started[-1].texts == []


async def test_a_call_taken_over_before_its_caller_heard_anything_is_resumed_and_greets() -> None:
    # Another worker pre-warmed the call and its model greeted, but the partition moved before
    # the stream started: this worker first sees the call with its stream and that session's
    # handle. Nothing has been played (no mark came back): the caller must still be greeted.
    gemini = FakeGemini()
    directory = AgentDirectory()
    directory.apply(version_published("t-1", "agent-1", agent_config(greeting="Hello from Acme.")))
    manager = _manager(1, gemini=gemini, directory=directory)
    async with FakeEdge() as edge:
        taken_over = dataclasses.replace(
            live_call_state(edge.url), session_open=False, resumption_handle="h-warm"
        )
        await _talk_once(manager, edge, taken_over)
    assert "h-warm" in repr(gemini.configs[-1])
    assert gemini.started[-1].texts == ["Greet the caller: Hello from Acme."]


async def test_without_prewarm_the_session_waits_for_the_stream() -> None:
    gemini = FakeGemini()
    manager = _manager(1, gemini=gemini, prewarm=False)
    async with FakeEdge() as edge:
        live_call = live_call_state(edge.url)
        manager.ensure(_before_the_stream(live_call, CallStatus.RECEIVED))
        assert not manager.active
        manager.ensure(live_call)
        await edge.connected.wait()
        await edge.stop_stream()
        await _settled(manager)
    assert len(gemini.configs) == 1


async def test_the_calls_variables_fill_its_prompt_template() -> None:
    directory = AgentDirectory()
    prompt = "You are calling {customer_name} about order {order}."
    await directory.learn(
        version_published("t-1", "agent-1", agent_config("+15550001111", system_prompt=prompt))
    )
    gemini = FakeGemini()
    manager = _manager(1, gemini=gemini, directory=directory)
    async with FakeEdge() as edge:
        call = dataclasses.replace(
            live_call_state(edge.url), variables={"customer_name": "Ann", "order": "42"}
        )
        await _talk_once(manager, edge, call)
    instruction = gemini.configs[0]["system_instruction"]
    assert "You are calling Ann about order 42." in instruction


async def test_the_call_id_reaches_the_stand_in_in_a_header_not_in_the_models_prompt() -> None:
    gemini = FakeGemini()
    manager = _manager(1, gemini=gemini)
    async with FakeEdge() as edge:
        call = live_call_state(edge.url)
        await _talk_once(manager, edge, call)
    config = gemini.configs[0]
    assert call.call_id not in config["system_instruction"]
    assert "[script:" not in config["system_instruction"]
    assert config["http_options"] == {"headers": {"x-standin-script": call.call_id}}
    types.LiveConnectConfig.model_validate(config)  # what the SDK's connect() builds from it


async def test_a_session_taking_a_call_over_numbers_its_transcript_on_from_the_earlier_ones() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    manager = _manager(1, gemini=gemini, sink=sink)
    async with FakeEdge() as edge:
        # The call's earlier sessions (another worker's, before a failover) recorded 7 segments.
        manager.ensure(dataclasses.replace(live_call_state(edge.url), transcript_segments=7))
        await edge.connected.wait()
        await eventually(lambda: bool(gemini.started))
        gemini.started[0].push(server_content={"input_transcription": {"text": "Still there?"}})
        gemini.started[0].push(server_content={"turn_complete": True})
        await eventually(lambda: bool(sink.of("TranscriptSegment")))
        await edge.stop_stream()
        await _settled(manager)
    assert [s.segment_index for s in sink.of("TranscriptSegment")] == [8]


async def test_a_session_taking_a_call_over_numbers_its_utterances_on_from_the_earlier_ones() -> None:
    # Reused ids would make the call machine drop this session's first interruption as the
    # earlier one's, and the edge conflate the two sessions' utterances.
    gemini, sink = FakeGemini(), FakeSink()
    manager = _manager(1, gemini=gemini, sink=sink)
    async with FakeEdge() as edge:
        manager.ensure(dataclasses.replace(live_call_state(edge.url), agent_utterances=3, agent_heard=True))
        await edge.connected.wait()
        await eventually(lambda: bool(gemini.started))
        audio = b"\x00\x01" * 2400
        gemini.started[0].push(server_content={"model_turn": {"parts": [{"inline_data": {"data": audio}}]}})
        await eventually(lambda: bool(sink.of("AgentSpeechStarted")))
        await edge.stop_stream()
        await _settled(manager)
    assert [s.utterance_id for s in sink.of("AgentSpeechStarted")] == ["call-1:u4"]


async def test_a_takeover_whose_handle_is_refused_is_primed_with_the_calls_transcript() -> None:
    gemini = FakeGemini()
    gemini.plans.append(errors.APIError(1008, {"message": "session resumption handle not found"}, None))
    fresh = gemini.live()
    manager = _manager(1, gemini=gemini)
    async with FakeEdge() as edge:
        call = dataclasses.replace(
            live_call_state(edge.url),
            resumption_handle="h-old",
            transcript_tail=("caller: Where is my order?", "agent: Let me check."),
        )
        manager.ensure(call)
        await eventually(lambda: gemini.started == [fresh])
        assert gemini.configs[0]["session_resumption"]["handle"] == "h-old"
        instruction = fresh.config["system_instruction"]
        assert "caller: Where is my order?\nagent: Let me check." in instruction
        await edge.stop_stream()
        await _settled(manager)
