"""CallSession leaving a voicemail: the message is said once the line is free, then it hangs up."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from session_fakes import FakeEdge, FakeGemini, FakeLive, FakeSink, eventually, target

from schemas import bridge
from streams.sessions.live_config import DEFAULT_CONFIG, voicemail_prompt
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner

pytestmark = pytest.mark.asyncio

MESSAGE = "Hi, this is Acme confirming your appointment tomorrow at ten."


def _session(
    edge: FakeEdge, gemini: FakeGemini, sink: FakeSink, *, voicemail: str | None = None
) -> CallSession:
    config = dataclasses.replace(DEFAULT_CONFIG, greeting="Hello from Acme.")
    aim = target(edge.url, config=config)
    aim = dataclasses.replace(aim, plan=dataclasses.replace(aim.plan, voicemail_message=voicemail))
    return CallSession(aim, connect_live=gemini.connect, facts=sink, tools=ToolRunner(None))


def _turn(live: FakeLive, agent: str) -> None:
    live.push(server_content={"output_transcription": {"text": agent}})
    live.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x01" * 480}}]}})
    live.push(server_content={"turn_complete": True})


def _hang_ups(sink: FakeSink) -> list[tuple[str, str]]:
    return [(r.requested_by, r.reason) for r in sink.of("HangUpRequested")]


def _agent_lines(sink: FakeSink) -> list[str]:
    return [r.text for r in sink.of("TranscriptSegment") if r.speaker == "agent"]


async def _finish(edge: FakeEdge, run: asyncio.Task[SessionOutcome]) -> SessionOutcome:
    await edge.stop_stream()
    return await asyncio.wait_for(run, 5)


async def test_session_with_a_voicemail_says_it_instead_of_greeting_then_hangs_up() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        run = asyncio.create_task(_session(edge, gemini, sink, voicemail=MESSAGE).run())
        await eventually(lambda: bool(live.texts))
        assert live.texts == [voicemail_prompt(MESSAGE)]  # no greeting for a machine
        await edge.say()  # the machine's own greeting and beep are not passed to the model
        _turn(live, MESSAGE)
        await eventually(lambda: "HangUp" in edge.kinds())
        outcome = await _finish(edge, run)
    assert outcome is SessionOutcome.ENDED
    assert live.audio == []
    assert _agent_lines(sink) == [MESSAGE]
    assert _hang_ups(sink) == [("agent", "voicemail")]
    kinds = edge.kinds()
    # The message played out (its mark, then the hang-up mark) before the line was hung up.
    assert kinds.index("AgentAudio") < kinds.index("HangUp")
    marks = [m.name for m in edge.received if isinstance(m, bridge.PlayMark)]
    assert marks == ["call-1:u1", "hangup"]


async def test_session_told_of_a_voicemail_mid_turn_waits_for_the_turn_to_end() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        session = _session(edge, gemini, sink)
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(live.texts))
        assert live.texts == ["Greet the caller: Hello from Acme."]
        live.push(server_content={"output_transcription": {"text": "Hello from"}})
        await eventually(lambda: bool(sink.of("GeminiSessionOpened")))
        await asyncio.sleep(0.05)
        session.request_voicemail(MESSAGE)
        session.request_voicemail("a second request is ignored")
        await asyncio.sleep(0.1)
        assert len(live.texts) == 1  # the greeting's turn is still going
        live.push(server_content={"output_transcription": {"text": " Acme."}})
        live.push(server_content={"turn_complete": True})
        await eventually(lambda: len(live.texts) == 2)
        assert live.texts[1] == voicemail_prompt(MESSAGE)
        assert _hang_ups(sink) == []  # the greeting's end is not the message's
        _turn(live, MESSAGE)
        await eventually(lambda: bool(_hang_ups(sink)))
        outcome = await _finish(edge, run)
    assert outcome is SessionOutcome.ENDED
    assert _agent_lines(sink) == ["Hello from Acme.", MESSAGE]
    assert _hang_ups(sink) == [("agent", "voicemail")]
    assert "HangUp" in edge.kinds()


async def test_session_says_the_voicemail_again_after_the_model_connection_drops() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    first, second = gemini.live(), gemini.live()
    async with FakeEdge() as edge:
        run = asyncio.create_task(_session(edge, gemini, sink, voicemail=MESSAGE).run())
        await eventually(lambda: bool(first.texts))
        first.fail(ConnectionResetError("lost"))
        await eventually(lambda: bool(second.texts), within=10)
        assert second.texts == [voicemail_prompt(MESSAGE)]
        _turn(second, MESSAGE)
        await eventually(lambda: bool(_hang_ups(sink)))
        outcome = await _finish(edge, run)
    assert outcome is SessionOutcome.ENDED
    assert _hang_ups(sink) == [("agent", "voicemail")]
