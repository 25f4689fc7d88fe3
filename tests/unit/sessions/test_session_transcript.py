"""Transcript segments carry when their words were said, on the stream's clock."""

from __future__ import annotations

import asyncio
import dataclasses

from session_fakes import CALLER_FRAME_BYTES, FakeEdge, FakeGemini, FakeSink, eventually, target

from schemas import bridge
from streams.sessions.live_config import DEFAULT_CONFIG
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner


async def _caller_audio_at(edge: FakeEdge, stream_ms: int) -> None:
    pcm = b"\x01\x00" * (CALLER_FRAME_BYTES // 2)
    await edge.send(bridge.CallerAudio(seq=stream_ms // 20, stream_ms=stream_ms, pcm=pcm))


async def _started(
    edge: FakeEdge, gemini: FakeGemini, sink: FakeSink
) -> tuple[CallSession, asyncio.Task[SessionOutcome]]:
    """A session with no greeting, running, once its bridge is connected."""
    config = dataclasses.replace(DEFAULT_CONFIG, greeting=None)
    session = CallSession(
        target(edge.url, config=config), connect_live=gemini.connect, facts=sink, tools=ToolRunner(None)
    )
    run = asyncio.create_task(session.run())
    await eventually(lambda: bool(edge.connections))
    return session, run


async def test_segments_span_the_words_not_the_end_of_the_turn() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        session, run = await _started(edge, gemini, sink)
        for stream_ms, piece in ((1000, "When are "), (1600, "you open?")):
            await _caller_audio_at(edge, stream_ms)
            await eventually(
                lambda at=stream_ms: live.frames_heard >= 1 and session._conversation.stream_ms == at
            )
            live.push(server_content={"input_transcription": {"text": piece}})
            await asyncio.sleep(0.05)
        await _caller_audio_at(edge, 2400)
        await eventually(lambda: session._conversation.stream_ms == 2400)
        one_second = b"\x00\x01" * (bridge.AGENT_RATE)  # PCM16 at 24 kHz
        live.push(server_content={"output_transcription": {"text": "From nine."}})
        live.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": one_second}}]}})
        await _caller_audio_at(edge, 2600)
        await asyncio.sleep(0.05)
        live.push(server_content={"turn_complete": True})
        await eventually(lambda: len(sink.of("TranscriptSegment")) == 2)
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)
    caller, agent = sink.of("TranscriptSegment")
    assert (caller.speaker, caller.text, caller.start_ms, caller.end_ms) == (
        "caller",
        "When are you open?",
        1000,
        1600,
    )
    assert (agent.speaker, agent.start_ms, agent.end_ms) == ("agent", 2400, 3400)


async def test_the_words_of_a_turn_cut_off_by_the_end_of_the_call_are_kept() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        _, run = await _started(edge, gemini, sink)
        await _caller_audio_at(edge, 1000)
        await eventually(lambda: live.frames_heard >= 1)
        live.push(server_content={"input_transcription": {"text": "Cancel my order, bye."}})
        live.push(server_content={"output_transcription": {"text": "Okay, I have cancel"}})
        await asyncio.sleep(0.1)
        await edge.stop_stream()  # the caller hangs up before the model's turn completes
        await asyncio.wait_for(run, 5)
    texts = [(s.speaker, s.text) for s in sink.of("TranscriptSegment")]
    assert texts == [("caller", "Cancel my order, bye."), ("agent", "Okay, I have cancel")]
