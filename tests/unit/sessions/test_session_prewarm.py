"""A pre-warmed CallSession: the model greets before the stream exists; the greeting reaches the
edge, in order, once the stream's bridge is attached; then the call goes on as any other."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from google.genai import errors
from session_fakes import TOKEN, FakeEdge, FakeGemini, FakeLive, FakeSink, eventually, target

from schemas import bridge
from streams.sessions.live_config import DEFAULT_CONFIG
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner

pytestmark = pytest.mark.asyncio

GREETING_AUDIO = b"\x00\x01" * 2400  # 100 ms at 24 kHz


def _warm_session(gemini: FakeGemini, sink: FakeSink) -> CallSession:
    config = dataclasses.replace(DEFAULT_CONFIG, greeting="Hello from Acme.")
    aim = dataclasses.replace(target("unused", config=config), bridge_url=None, bridge_token=None)
    return CallSession(aim, connect_live=gemini.connect, facts=sink, tools=ToolRunner(None))


def _greet(live: FakeLive) -> None:
    live.push(server_content={"output_transcription": {"text": "Hello from Acme."}})
    live.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": GREETING_AUDIO}}]}})
    live.push(server_content={"turn_complete": True})


async def test_the_greeting_is_made_before_the_stream_and_played_once_it_starts() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    session = _warm_session(gemini, sink)
    async with FakeEdge() as edge:
        run = asyncio.create_task(session.run())
        await eventually(lambda: live.texts == ["Greet the caller: Hello from Acme."])
        _greet(live)
        await eventually(lambda: bool(sink.of("AgentSpeechFinished")))
        assert edge.connections == []  # the model has spoken; there is nowhere to play it yet
        assert session.bridge_token is None

        session.attach(edge.url, TOKEN)
        await eventually(lambda: "PlayMark" in edge.kinds())
        await edge.say(frames=3)  # the caller's audio now reaches the model
        await eventually(lambda: live.frames_heard == 3)
        await edge.stop_stream()
        outcome = await asyncio.wait_for(run, 5)

    assert outcome is SessionOutcome.ENDED
    assert session.bridge_token == TOKEN
    assert edge.kinds() == ["BeginUtterance", "AgentAudio", "PlayMark"]
    played = b"".join(m.pcm for m in edge.received if isinstance(m, bridge.AgentAudio))
    assert played == GREETING_AUDIO
    assert sink.kinds()[:3] == ["GeminiSessionOpened", "AgentSpeechStarted", "TranscriptSegment"]
    assert sink.kinds()[-1] == "GeminiSessionClosed"


async def test_a_refused_stream_ends_the_pre_warmed_session_with_the_edges_code() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    gemini.live()
    session = _warm_session(gemini, sink)
    async with FakeEdge(refuse_with=bridge.CLOSE_CALL_ENDED) as edge:
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(sink.of("GeminiSessionOpened")))
        session.attach(edge.url, TOKEN)
        outcome = await asyncio.wait_for(run, 5)

    assert outcome is SessionOutcome.REFUSED
    closed = sink.of("GeminiSessionClosed")
    assert [(c.reason, c.close_code) for c in closed] == [("call_ended", bridge.CLOSE_CALL_ENDED)]
    assert not sink.of("HangUpRequested")


async def test_a_pre_warmed_session_is_cancelled_cleanly_when_the_call_ends_before_its_stream() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    run = asyncio.create_task(_warm_session(gemini, sink).run())
    await eventually(lambda: bool(live.texts))
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_a_pre_warmed_session_that_cannot_reach_the_model_leaves_the_call_to_the_stream() -> None:
    # No stream: no goodbye to play and no hang-up. The session started with the stream tries
    # the model again and, if it is still down, says goodbye there.
    gemini, sink = FakeGemini(plans=[_unreachable() for _ in range(4)]), FakeSink()
    outcome = await asyncio.wait_for(_warm_session(gemini, sink).run(), 20)
    assert outcome is SessionOutcome.GAVE_UP
    assert sink.kinds() == ["GeminiSessionClosed"] * 4
    assert not sink.of("HangUpRequested")


def _unreachable() -> errors.APIError:
    return errors.APIError(1011, {"message": "overloaded", "status": "UNAVAILABLE"}, None)


async def test_a_stream_that_starts_during_the_retries_gets_a_full_count_of_its_own() -> None:
    # The model fails twice before the stream; then the caller is there. A session started with
    # the stream would try four times before its goodbye: this one must too, not give up after
    # two more. (Three failures after the stream, then the model answers.)
    gemini, sink = FakeGemini(plans=[_unreachable() for _ in range(5)]), FakeSink()
    live = gemini.live()
    session = _warm_session(gemini, sink)
    async with FakeEdge() as edge:
        run = asyncio.create_task(session.run())
        await eventually(lambda: len(sink.of("GeminiSessionClosed")) == 2)
        session.attach(edge.url, TOKEN)
        await eventually(lambda: live.texts == ["Greet the caller: Hello from Acme."], within=10)
        await edge.stop_stream()
        outcome = await asyncio.wait_for(run, 5)

    assert outcome is SessionOutcome.ENDED
    assert not sink.of("HangUpRequested")
