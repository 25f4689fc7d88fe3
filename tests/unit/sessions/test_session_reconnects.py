"""Reconnects over a long call: failures count only in a row, and a goAway does not carry the
turn in progress over to the next connection."""

from __future__ import annotations

import asyncio

import pytest
from google.genai import errors
from session_fakes import FakeEdge, FakeGemini, FakeSink, eventually, target

from schemas import bridge
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner

pytestmark = pytest.mark.asyncio


def _internal_error() -> errors.APIError:
    return errors.APIError(1011, {"message": "Internal error", "status": "INTERNAL"}, None)


def _start(edge: FakeEdge, gemini: FakeGemini, sink: FakeSink) -> asyncio.Task[SessionOutcome]:
    session = CallSession(target(edge.url), connect_live=gemini.connect, facts=sink, tools=ToolRunner(None))
    return asyncio.create_task(session.run())


async def test_isolated_failures_each_after_a_healthy_turn_never_add_up_to_giving_up() -> None:
    # max_reconnects (3) capped the whole call: the fourth isolated failure hung up on the caller.
    gemini, sink = FakeGemini(), FakeSink()
    lives = [gemini.live() for _ in range(5)]
    async with FakeEdge() as edge:
        run = _start(edge, gemini, sink)
        for i in range(4):
            live = lives[i]
            await eventually(lambda i=i: len(gemini.started) == i + 1, within=10)
            live.push(server_content={"input_transcription": {"text": f"question {i}"}})
            live.push(server_content={"output_transcription": {"text": f"answer {i}"}})
            live.push(server_content={"turn_complete": True})
            await eventually(lambda i=i: len(sink.of("TranscriptSegment")) > 2 * i + 1)
            live.fail(_internal_error())
        await eventually(lambda: len(gemini.started) == 5, within=10)
        assert sink.of("HangUpRequested") == []
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)


async def test_a_go_away_does_not_mute_the_next_connections_answer() -> None:
    # The barged-in turn survived the reconnect, and the resumed connection's whole answer was
    # dropped as part of it; the caller heard nothing.
    gemini, sink = FakeGemini(), FakeSink()
    first, second = gemini.live(), gemini.live()
    async with FakeEdge() as edge:
        run = _start(edge, gemini, sink)
        await eventually(lambda: len(gemini.started) == 1)
        first.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x01" * 480}}]}})
        await eventually(lambda: "AgentAudio" in edge.kinds())
        await edge.send(bridge.BargeIn(utterance_id="call-1:u1", stream_ms=100, played_ms=20))
        await asyncio.sleep(0.1)
        first.push(go_away={"time_left": "1s"})  # before the interrupted turn's turnComplete
        await eventually(lambda: len(gemini.started) == 2)
        before = edge.kinds().count("AgentAudio")
        second.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x02" * 4800}}]}})
        second.push(server_content={"turn_complete": True})
        await eventually(lambda: edge.kinds().count("AgentAudio") > before)
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)


async def test_a_turn_cut_short_by_a_go_away_finishes_its_utterance() -> None:
    # Left speaking in the call's state, the line counted as busy and the silence timer stopped.
    gemini, sink = FakeGemini(), FakeSink()
    first, _ = gemini.live(), gemini.live()
    async with FakeEdge() as edge:
        run = _start(edge, gemini, sink)
        await eventually(lambda: len(gemini.started) == 1)
        first.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x01" * 480}}]}})
        await eventually(lambda: bool(sink.of("AgentSpeechStarted")))
        first.push(go_away={"time_left": "1s"})
        await eventually(lambda: bool(sink.of("AgentSpeechFinished")))
        assert [r.utterance_id for r in sink.of("AgentSpeechFinished")] == ["call-1:u1"]
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)
