"""A goAway lets the connection's work in progress finish before the planned reconnect: the
model's turn, the running tools (answered on the connection that asked) and a handle covering
them, within the goAway's ``timeLeft``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.genai import errors
from session_fakes import FakeEdge, FakeGemini, FakeLive, FakeSink, eventually, target

from streams.sessions import session as session_module
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolContext, ToolResult, ToolRunner

_AUDIO = {"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x01" * 480}}]}}


class SlowRunner(ToolRunner):
    def __init__(self, delay: float) -> None:
        super().__init__(None)
        self.delay = delay

    async def run(
        self, context: ToolContext, tool_call_id: str, name: str, args: dict[str, Any]
    ) -> ToolResult:
        await asyncio.sleep(self.delay)
        return ToolResult({"status": "shipped"})


def _start(
    edge: FakeEdge, gemini: FakeGemini, sink: FakeSink, tools: ToolRunner
) -> asyncio.Task[SessionOutcome]:
    session = CallSession(target(edge.url), connect_live=gemini.connect, facts=sink, tools=tools)
    return asyncio.create_task(session.run())


@contextlib.asynccontextmanager
async def _agent_speaking(gemini: FakeGemini, sink: FakeSink, first: FakeLive) -> AsyncIterator[FakeEdge]:
    """A call whose model, on its ``first`` connection, has begun a turn; the stream stops after."""
    async with FakeEdge() as edge:
        run = _start(edge, gemini, sink, ToolRunner(None))
        await eventually(lambda: len(gemini.started) == 1)
        first.push(server_content=_AUDIO)
        await eventually(lambda: bool(sink.of("AgentSpeechStarted")))
        yield edge
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)


@pytest.mark.asyncio
async def test_a_go_away_lets_a_running_tool_answer_on_its_connection_then_resumes() -> None:
    # The goAway reconnected at once: the tool was cancelled (ToolCallFailed) and its answer
    # never reached any model.
    gemini, sink = FakeGemini(), FakeSink()
    first, second = gemini.live(), gemini.live()
    async with FakeEdge() as edge:
        run = _start(edge, gemini, sink, SlowRunner(0.3))
        await eventually(lambda: len(gemini.started) == 1)
        first.push(session_resumption_update={"new_handle": "h1", "resumable": True})
        first.push(server_content=_AUDIO)
        first.push(tool_call={"function_calls": [{"id": "fc-1", "name": "lookup_order", "args": {}}]})
        await eventually(lambda: bool(sink.of("ToolCallRequested")))
        first.push(go_away={"time_left": "50s"})
        await eventually(lambda: len(first.tool_responses) == 1)
        assert len(gemini.started) == 1  # the model still owes its answer to the tool
        first.push(server_content={"output_transcription": {"text": "It has shipped."}, **_AUDIO})
        first.push(server_content={"turn_complete": True})
        await asyncio.sleep(0.3)
        assert len(gemini.started) == 1  # waiting for a handle that covers the answer
        first.push(session_resumption_update={"new_handle": "h2", "resumable": True})
        await eventually(lambda: len(gemini.started) == 2)
        assert second.config["session_resumption"]["handle"] == "h2"
        assert sink.of("ToolCallFailed") == []
        assert [r.tool_call_id for r in sink.of("ToolCallCompleted")] == ["fc-1"]
        assert [r.reason for r in sink.of("GeminiSessionClosed")] == ["go_away"]
        assert sink.of("GeminiSessionClosed")[0].resumption_handle == "h2"
        assert second.tool_responses == []
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)


@pytest.mark.asyncio
async def test_a_go_away_lets_the_turn_in_progress_finish_on_its_connection() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    first, _ = gemini.live(), gemini.live()
    async with _agent_speaking(gemini, sink, first):
        first.push(go_away={"time_left": "50s"})
        await asyncio.sleep(0.2)
        first.push(server_content={"output_transcription": {"text": "the whole answer"}, **_AUDIO})
        first.push(server_content={"turn_complete": True})
        first.push(session_resumption_update={"new_handle": "h1", "resumable": True})
        await eventually(lambda: len(gemini.started) == 2)
        texts = [r.text for r in sink.of("TranscriptSegment")]
        assert texts == ["the whole answer"]
        assert [r.played_ms for r in sink.of("AgentSpeechFinished")] == [40]  # both chunks


@pytest.mark.asyncio
async def test_a_go_away_reconnects_by_its_deadline_whatever_is_in_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session_module, "GO_AWAY_MARGIN_S", 0.2)
    gemini, sink = FakeGemini(), FakeSink()
    first, _ = gemini.live(), gemini.live()
    async with _agent_speaking(gemini, sink, first):  # a turn that never completes
        loop = asyncio.get_running_loop()
        started = loop.time()
        first.push(go_away={"time_left": "0.7s"})
        await eventually(lambda: len(gemini.started) == 2)
        assert 0.4 <= loop.time() - started < 1.5
        assert len(sink.of("AgentSpeechFinished")) == 1  # cut short, as before


@pytest.mark.asyncio
async def test_a_go_away_holds_the_callers_audio_for_the_next_connection() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    first, second = gemini.live(), gemini.live()
    async with _agent_speaking(gemini, sink, first) as edge:
        first.push(go_away={"time_left": "50s"})
        await asyncio.sleep(0.1)
        await edge.say(3)
        await asyncio.sleep(0.2)
        assert first.frames_heard == 0
        first.push(server_content={"turn_complete": True})
        first.push(session_resumption_update={"new_handle": "h1", "resumable": True})
        await eventually(lambda: second.frames_heard == 3)


@pytest.mark.parametrize(
    ("time_left", "seconds"),
    [("50s", 50.0), ("1.5s", 1.5), ("0s", 0.0), (None, None), ("", None), ("soon", None), ("5m", None)],
)
def test_time_left_is_read_as_a_protobuf_duration(time_left: str | None, seconds: float | None) -> None:
    assert session_module._time_left_s(time_left) == seconds


@pytest.mark.asyncio
async def test_a_go_away_storm_backs_off_and_ends_the_call_like_a_failing_model() -> None:
    # Each goAway right after setup reconnected at once, for ever (40 connections in 10 ms).
    gemini, sink = FakeGemini(), FakeSink()
    for _ in range(10):
        gemini.live().push(go_away={"time_left": "0s"})
    async with FakeEdge() as edge:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await asyncio.wait_for(_start(edge, gemini, sink, ToolRunner(None)), 15)
        assert outcome is SessionOutcome.GAVE_UP
        assert len(gemini.started) == 4  # the first connection and max_reconnects (3) more
        assert loop.time() - started >= 0.2 + 0.4 + 0.8  # backed off between them
        assert [r.reason for r in sink.of("GeminiSessionClosed")] == ["go_away"] * 4
        assert [(r.requested_by, r.reason) for r in sink.of("HangUpRequested")] == [("system", "failed")]


@pytest.mark.asyncio
async def test_go_aways_after_an_exchange_with_the_caller_never_add_up_to_giving_up() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    lives = [gemini.live() for _ in range(6)]
    async with FakeEdge() as edge:
        run = _start(edge, gemini, sink, ToolRunner(None))
        for i in range(5):
            await eventually(lambda i=i: len(gemini.started) == i + 1, within=10)
            lives[i].push(server_content={"input_transcription": {"text": f"question {i}"}})
            lives[i].push(server_content={"output_transcription": {"text": f"answer {i}"}})
            lives[i].push(server_content={"turn_complete": True})
            lives[i].push(go_away={"time_left": "0s"})
        await eventually(lambda: len(gemini.started) == 6, within=10)
        assert sink.of("HangUpRequested") == []
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)


@pytest.mark.asyncio
async def test_the_answer_to_our_own_prompt_is_no_proof_of_a_working_connection() -> None:
    # Each reconnect's apology was answered, counted as a healthy turn, and restarted the count
    # of failures: a model failing every caller turn kept the call retrying for ever.
    gemini, sink = FakeGemini(), FakeSink()
    lives = [gemini.live() for _ in range(8)]
    async with FakeEdge() as edge:
        run = _start(edge, gemini, sink, ToolRunner(None))
        for i in range(4):
            await eventually(lambda i=i: len(gemini.started) == i + 1, within=10)
            lives[i].push(server_content={"output_transcription": {"text": f"Sorry about that {i}."}})
            lives[i].push(server_content={"turn_complete": True})
            await eventually(lambda i=i: len(sink.of("TranscriptSegment")) > i)
            lives[i].fail(errors.APIError(1011, {"message": "Internal error"}, None))
        outcome = await asyncio.wait_for(run, 15)
        assert outcome is SessionOutcome.GAVE_UP
        assert len(gemini.started) == 4
        assert [(r.requested_by, r.reason) for r in sink.of("HangUpRequested")] == [("system", "failed")]
