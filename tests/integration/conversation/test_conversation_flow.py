"""A whole conversation over the real broker: Twilio caller → edge → bridge → worker → Gemini stand-in.

The worker runs as its own process (``python -m streams``) exactly as in production; the edge and
the stand-in run in this process on real sockets; the caller speaks real μ-law espeak speech.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from edge.audio import mulaw
from edge.audio.vad import energy_dbfs
from edge.server import EdgeServer
from edge.twiml import media_stream_url
from infra.settings import Settings
from streams.standin.server import StandIn
from tests.integration.conversation.calls import (
    AUTH_TOKEN,
    EventLog,
    _answer_inbound,
    _publish_agent,
    _seed_knowledge,
    _start_worker,
    fresh_app_id,
    until_routed,
)
from tests.integration.edge.edge_sim import speech
from voiceagent.caller import SimulatedCaller, to_frames

pytestmark = pytest.mark.integration


async def test_conversation_with_tool_calls_barge_in_and_hang_up(
    settings: Settings, standin: StandIn, edge: tuple[EdgeServer, Settings], tmp_path: Path
) -> None:
    _server, edge_settings = edge
    agent_id, kb_id = f"agent-{uuid.uuid4().hex[:8]}", f"kb-{uuid.uuid4().hex[:8]}"
    await _publish_agent(settings, agent_id, kb_id)
    _seed_knowledge(settings, kb_id)
    await until_routed(_server, agent_id)
    # The worker's group starts at the end of the inputs as they are now, before the call.
    app_id = await fresh_app_id(settings, "conv")
    params = await _answer_inbound(edge_settings)
    call_id = params["call_id"]
    script = {
        "turns": [
            {
                "caller": "When are you open?",
                "tool_calls": [{"name": "search_knowledge", "args": {"query": "opening hours"}}],
                "after_tool_reply": "Here is what I found in our notes. {result} Is there anything else "
                "I can help you with today, perhaps a table for this evening or a question about the menu?",
            },
            {
                "caller": "No thanks, goodbye.",
                "tool_calls": [{"name": "end_call", "args": {"reason": "completed"}}],
                "after_tool_reply": "Goodbye, and thank you for calling.",
            },
        ]
    }
    async with httpx.AsyncClient() as client:
        put = await client.put(f"{standin.control_url}/scripts/{call_id}", json=script)
        assert put.status_code in (200, 201, 204), put.text
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, standin, log, app_id=app_id)
    media_url = media_stream_url(edge_settings.twilio.public_base_url)
    sim = SimulatedCaller(media_url, AUTH_TOKEN, stream_sid="MZ" + uuid.uuid4().hex, call_sid="CA-conv")
    events = EventLog(call_id)
    try:
        await sim.open(params)
        await events.follow(settings, lambda log: "GeminiSessionOpened" in log.kinds(), within=60)
        sim.say(to_frames(speech("When are you open?", 8000)))
        # The agent answers with the knowledge it looked up; talk over it once it is speaking.
        await events.follow(settings, lambda log: "AgentSpeechStarted" in log.kinds(), within=30)
        await asyncio.sleep(1.5)
        heard_before_barge_in = len(sim.audio.heard)
        sim.say(to_frames(speech("No thanks, goodbye.", 8000)))
        try:
            await events.follow(settings, lambda log: "CallEnded" in log.kinds(), within=60)
        except AssertionError as err:
            raise AssertionError(
                f"{err}; heard {len(sim.audio.heard)} frames, marks {sim.audio.marks}, "
                f"clears at {sim.audio.cleared_at}, barge-in after frame {heard_before_barge_in}, "
                f"sent {len(sim.audio.sent)} frames, edge metrics {_server.metrics.snapshot()}"
            ) from None
    finally:
        await sim.hang_up()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    kinds = events.kinds()
    context = f"{kinds}\n{log.read_text()[-3000:]}"
    for expected in (
        "CallReceived",
        "MediaStreamStarted",
        "GeminiSessionOpened",
        "ToolCallRequested",
        "ToolCallCompleted",
        "AgentSpeechStarted",
        "AgentInterrupted",
        "HangUpRequested",
        "CallEnded",
    ):
        assert expected in kinds, context
    segments = [e for e in events.events if type(e).__name__ == "TranscriptSegment"]
    assert {"caller", "agent"} <= {s.speaker for s in segments}, context
    assert any("nine in the morning" in s.text for s in segments if s.speaker == "agent"), context
    tools = [e.name for e in events.events if type(e).__name__ == "ToolCallCompleted"]
    assert tools == ["search_knowledge", "end_call"], context
    hang_up = next(e for e in events.events if type(e).__name__ == "HangUpRequested")
    assert hang_up.requested_by == "agent"
    # The caller really heard the agent (speech energy in what Twilio received), and the barge-in
    # cleared playback.
    heard = np.concatenate([mulaw.decode(payload) for payload in sim.audio.heard[:heard_before_barge_in]])
    loud = sum(1 for i in range(0, len(heard) - 160, 160) if energy_dbfs(heard[i : i + 160]) > -35)
    assert loud > 25, "the caller should have heard at least half a second of agent speech"
    assert sim.audio.clears, "talking over the agent must clear playback"
