"""CallSession under bad input: model errors, malformed messages, broken tools, a flaky bridge."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.genai import errors
from session_fakes import CALLER_FRAME_BYTES, FakeEdge, FakeGemini, FakeSink, eventually, target
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close

from schemas import bridge
from streams.sessions.live_config import SEARCH_KNOWLEDGE
from streams.sessions.recovery import APOLOGY_PROMPT
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner

pytestmark = pytest.mark.asyncio


def _session(edge: FakeEdge, gemini: FakeGemini, sink: FakeSink, **kw: Any) -> CallSession:
    tools = kw.pop("tools", ToolRunner(None))
    return CallSession(target(edge.url, **kw), connect_live=gemini.connect, facts=sink, tools=tools)


def _api_error(code: int, message: str) -> errors.APIError:
    return errors.APIError(code, {"message": message, "status": message}, None)


def _closed_reasons(sink: FakeSink) -> list[tuple[str, int | None]]:
    return [(e.reason, e.close_code) for e in sink.of("GeminiSessionClosed")]


async def _finish(edge: FakeEdge, run: asyncio.Task[SessionOutcome]) -> SessionOutcome:
    await edge.stop_stream()
    return await asyncio.wait_for(run, 5)


def _turn(live: Any, caller: str, agent: str) -> None:
    live.push(server_content={"input_transcription": {"text": caller}})
    live.push(server_content={"output_transcription": {"text": agent}})
    live.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x01" * 480}}]}})
    live.push(server_content={"turn_complete": True})


async def test_session_model_error_resumes_by_handle_and_asks_for_an_apology() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    first, second = gemini.live(), gemini.live()
    async with FakeEdge() as edge:
        run = asyncio.create_task(_session(edge, gemini, sink).run())
        first.push(session_resumption_update={"new_handle": "h-1", "resumable": True})
        _turn(first, "Hello?", "Hi there.")
        await eventually(lambda: "TranscriptSegment" in sink.kinds())
        first.fail(_api_error(1011, "Internal error"))
        await eventually(lambda: "GeminiSessionResumed" in sink.kinds())
        await edge.say()
        await eventually(lambda: second.frames_heard == 3)
        outcome = await _finish(edge, run)
    assert outcome is SessionOutcome.ENDED
    assert _closed_reasons(sink) == [("error", 1011), ("call_ended", None)]
    [resumed] = sink.of("GeminiSessionResumed")
    assert (resumed.resumption_handle, resumed.fresh_session) == ("h-1", False)
    assert gemini.configs[1]["session_resumption"] == {"handle": "h-1"}
    assert second.texts == [APOLOGY_PROMPT]


async def test_session_send_after_the_server_closed_counts_as_a_model_failure() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    first, second = gemini.live(), gemini.live()
    first.send_error = ConnectionClosedError(Close(1011, "deadline expired"), None)
    async with FakeEdge() as edge:
        run = asyncio.create_task(_session(edge, gemini, sink).run())
        await eventually(lambda: bool(edge.connections))
        await edge.say(1)  # the send fails with websockets' error, not APIError
        await eventually(lambda: "GeminiSessionClosed" in sink.kinds())
        await edge.say(2)
        await eventually(lambda: second.frames_heard == 2)
        await _finish(edge, run)
    assert _closed_reasons(sink)[0] == ("error", 1011)


async def test_session_unknown_handle_opens_a_fresh_session_primed_with_the_transcript() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    first = gemini.live()
    gemini.plans.append(_api_error(1008, "session resumption handle not found"))
    fresh = gemini.live()
    async with FakeEdge() as edge:
        run = asyncio.create_task(_session(edge, gemini, sink).run())
        first.push(session_resumption_update={"new_handle": "h-1", "resumable": True})
        _turn(first, "I want a table.", "For how many?")
        await eventually(lambda: len(sink.of("TranscriptSegment")) == 2)
        first.fail(_api_error(1011, "Internal error"))
        await eventually(lambda: "GeminiSessionResumed" in sink.kinds(), within=5)
        await _finish(edge, run)
    [resumed] = sink.of("GeminiSessionResumed")
    assert resumed.fresh_session is True
    prompt = gemini.configs[2]["system_instruction"]
    assert "caller: I want a table." in prompt
    assert "agent: For how many?" in prompt
    assert gemini.configs[2]["session_resumption"] == {"handle": None}
    assert fresh.texts == [APOLOGY_PROMPT]
    assert [c for _, c in _closed_reasons(sink)][:2] == [1011, 1008]


@pytest.mark.parametrize("raw_error", [ValueError("Failed to parse response: b'{{'"), TypeError("'<=' None")])
async def test_session_malformed_server_message_is_recorded_and_the_session_reconnects(
    raw_error: Exception,
) -> None:
    gemini, sink = FakeGemini(), FakeSink()
    first, second = gemini.live(), gemini.live()
    async with FakeEdge() as edge:
        run = asyncio.create_task(_session(edge, gemini, sink).run())
        first.push(session_resumption_update={"new_handle": "h-1", "resumable": True})
        _turn(first, "Hello?", "Hi.")
        first.fail(raw_error)
        await eventually(lambda: "GeminiSessionResumed" in sink.kinds())
        await _finish(edge, run)
    assert _closed_reasons(sink)[0] == ("error", 1007)
    assert second.texts == [APOLOGY_PROMPT]


async def test_session_unreachable_model_says_goodbye_and_hangs_up() -> None:
    gemini, sink = FakeGemini(plans=[_api_error(1011, "overloaded") for _ in range(4)]), FakeSink()
    async with FakeEdge() as edge:
        outcome = await asyncio.wait_for(_session(edge, gemini, sink).run(), 20)
    assert outcome is SessionOutcome.GAVE_UP
    assert _closed_reasons(sink) == [("error", 1011)] * 4
    [hang_up] = sink.of("HangUpRequested")
    assert (hang_up.requested_by, hang_up.reason) == ("system", "failed")
    spoken = sum(len(m.pcm) for m in edge.received if isinstance(m, bridge.AgentAudio))
    assert spoken > 24000 * 2, "the caller hears a spoken apology before the hang-up"
    assert edge.kinds()[-1] == "HangUp"


async def test_session_quota_exhaustion_gives_up_after_one_retry() -> None:
    quota = _api_error(1011, "RESOURCE_EXHAUSTED: You exceeded your current quota")
    gemini, sink = FakeGemini(plans=[quota, quota, quota]), FakeSink()
    async with FakeEdge() as edge:
        outcome = await asyncio.wait_for(_session(edge, gemini, sink).run(), 20)
    assert outcome is SessionOutcome.GAVE_UP
    assert len(sink.of("GeminiSessionClosed")) == 2
    assert "HangUpRequested" in sink.kinds()


async def test_session_tool_that_times_out_or_returns_garbage_is_recorded_and_answered() -> None:
    async def search(*_: Any) -> list[dict[str, Any]]:
        if not calls:
            calls.append(1)
            await asyncio.sleep(1)
        return [{"title": "x", "text": object()}, 42]  # type: ignore[list-item]

    calls: list[int] = []
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    config = target("ws://unused").plan.config
    from dataclasses import replace

    config = replace(config, knowledge_base_ids=("kb-1",))
    async with FakeEdge() as edge:
        session = _session(edge, gemini, sink, tools=ToolRunner(search, timeout_s=0.05), config=config)
        run = asyncio.create_task(session.run())
        for n in (1, 2):
            live.push(
                tool_call={
                    "function_calls": [{"id": f"fc-{n}", "name": SEARCH_KNOWLEDGE, "args": {"query": "q"}}]
                }
            )
        await eventually(lambda: len(live.tool_responses) == 2)
        await _finish(edge, run)
    # The tools run side by side: the garbage answer is recorded before the slow one times out.
    failed = {f.tool_call_id: f.error for f in sink.of("ToolCallFailed")}
    assert sorted(failed) == ["fc-1", "fc-2"]
    assert "timed out" in failed["fc-1"]
    assert "search_knowledge failed" in failed["fc-2"]
    assert all("error" in (r.response or {}) for r in live.tool_responses)


async def test_session_ignores_bridge_garbage_and_keeps_streaming() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        run = asyncio.create_task(_session(edge, gemini, sink).run())
        await eventually(lambda: bool(edge.connections))
        for junk in (b"\x01", "not json", '{"type":"launch"}', b"\x07" + b"\x00" * 8, b"\x01" + b"\x00" * 9):
            await edge.send(junk)
        await edge.say(2)
        await eventually(lambda: live.frames_heard == 2)
        outcome = await _finish(edge, run)
    assert outcome is SessionOutcome.ENDED
    assert sink.kinds() == ["GeminiSessionOpened", "GeminiSessionClosed"]
    # The model heard the two real frames and not a byte more: frames_heard rounds down, so a
    # junk frame's odd byte passed on with them went unseen.
    frame = b"\x01\x00" * (CALLER_FRAME_BYTES // 2)  # what FakeEdge.say sends
    assert b"".join(live.audio) == frame * 2


async def test_session_reconnects_a_dropped_bridge_without_dropping_the_model() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        run = asyncio.create_task(_session(edge, gemini, sink).run())
        await eventually(lambda: bool(edge.connections))
        await edge.connections[-1].close(1011, "edge hiccup")
        await eventually(lambda: len(edge.connections) == 2)
        await edge.say(2)
        await eventually(lambda: live.frames_heard == 2)
        await _finish(edge, run)
    assert sink.kinds() == ["GeminiSessionOpened", "GeminiSessionClosed"]
    assert len(gemini.configs) == 1


async def test_session_token_for_an_ended_call_is_recorded_and_not_retried() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    async with FakeEdge(refuse_with=bridge.CLOSE_CALL_GONE) as edge:
        outcome = await asyncio.wait_for(_session(edge, gemini, sink).run(), 5)
    assert outcome is SessionOutcome.REFUSED
    assert _closed_reasons(sink) == [("call_ended", bridge.CLOSE_CALL_GONE)]
    assert gemini.configs == []
