"""A session that takes a call over (after a failover or a rebalance) starts from the call's
resumption handle; when the service refuses that handle, the fresh session it opens is still
the call's: reported as such, primed with the call's latest transcript, and apologised for."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from google.genai import errors
from session_fakes import FakeEdge, FakeGemini, FakeSink, eventually, target

from streams.sessions.recovery import APOLOGY_PROMPT
from streams.sessions.session import CallSession
from streams.sessions.tools import ToolRunner

CALL_SO_FAR = ("caller: Where is my order 42?", "agent: Let me look that up.")


@pytest.mark.asyncio
async def test_a_takeover_whose_handle_is_refused_starts_fresh_with_the_calls_transcript() -> None:
    # It started blank: reported as a new session, no transcript, no apology, mid-call.
    gemini, sink = FakeGemini(), FakeSink()
    gemini.plans.append(errors.APIError(1008, {"message": "session resumption handle not found"}, None))
    second = gemini.live()
    async with FakeEdge() as edge:
        taken_over = target(edge.url, handle="h-from-call-state")
        taken_over = replace(taken_over, plan=replace(taken_over.plan, call_transcript=CALL_SO_FAR))
        session = CallSession(taken_over, connect_live=gemini.connect, facts=sink, tools=ToolRunner(None))
        run = asyncio.create_task(session.run())
        await eventually(lambda: len(gemini.started) == 1, within=5)
        assert gemini.configs[0]["session_resumption"]["handle"] == "h-from-call-state"
        assert second.config["session_resumption"]["handle"] is None
        instruction = second.config["system_instruction"]
        assert "the conversation so far" in instruction
        assert all(line in instruction for line in CALL_SO_FAR)
        assert sink.of("GeminiSessionOpened") == []
        [resumed] = sink.of("GeminiSessionResumed")
        assert (resumed.fresh_session, resumed.resumption_handle) == (True, "")
        await eventually(lambda: second.texts == [APOLOGY_PROMPT])
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)


@pytest.mark.asyncio
async def test_a_session_that_started_the_call_is_not_primed_with_the_calls_transcript() -> None:
    # Only a takeover's fresh session is primed with what the call's state kept: a session that
    # started without a handle (pre-warmed, or restarted unheard) opens as a new session.
    gemini, sink = FakeGemini(), FakeSink()
    gemini.plans.append(errors.APIError(1011, {"message": "Internal error"}, None))
    second = gemini.live()
    async with FakeEdge() as edge:
        first = target(edge.url)
        first = replace(first, plan=replace(first.plan, call_transcript=CALL_SO_FAR))
        session = CallSession(first, connect_live=gemini.connect, facts=sink, tools=ToolRunner(None))
        run = asyncio.create_task(session.run())
        await eventually(lambda: len(gemini.started) == 1, within=5)
        assert "the conversation so far" not in second.config["system_instruction"]
        assert sink.of("GeminiSessionResumed") == []
        assert len(sink.of("GeminiSessionOpened")) == 1
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)
