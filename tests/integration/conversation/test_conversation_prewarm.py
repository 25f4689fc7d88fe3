"""Pre-warm over the real broker: the worker opens the call's Gemini session on CallReceived, so the
greeting is ready before Twilio starts the media stream, and the caller hears it from the start.

The stream is held back until the greeting has been spoken into the worker's queue: the log then
shows the session opened and the agent speaking before ``MediaStreamStarted``, and the caller
still hears the whole greeting once connected.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

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
    NUMBER,
    TENANT,
    EventLog,
    _answer_inbound,
    _start_worker,
    fresh_app_id,
    until_routed,
)
from tests.support.agents import agent_config, publish, version_published
from voiceagent.caller import SimulatedCaller

pytestmark = pytest.mark.integration

GREETING = "Thank you for calling Chez Test, how can I help you today?"


def _loud_frames(heard: list[bytes]) -> int:
    pcm = np.concatenate([mulaw.decode(payload) for payload in heard]) if heard else np.zeros(0, np.int16)
    return sum(1 for i in range(0, len(pcm) - 160, 160) if energy_dbfs(pcm[i : i + 160]) > -35)


async def _until(condition: Callable[[], bool], within: float) -> None:
    """Wait for condition; the assertions after say what was missing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition() and loop.time() < deadline:  # noqa: ASYNC110 - polling what the caller heard
        await asyncio.sleep(0.2)


async def test_the_greeting_is_ready_before_the_stream_and_heard_from_its_start(
    settings: Settings, standin: StandIn, edge: tuple[EdgeServer, Settings], tmp_path: Path
) -> None:
    _server, edge_settings = edge
    agent_id = f"agent-{uuid.uuid4().hex[:8]}"
    config = agent_config(NUMBER, system_prompt="You are the booking line of Chez Test.", greeting=GREETING)
    await publish(settings.kafka, version_published(TENANT, agent_id, config, correlation_id="prewarm-test"))
    await until_routed(_server, agent_id)
    app_id = await fresh_app_id(settings, "prewarm")
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, standin, log, app_id=app_id)
    media_url = media_stream_url(edge_settings.twilio.public_base_url)
    sim = SimulatedCaller(media_url, AUTH_TOKEN, stream_sid="MZ" + uuid.uuid4().hex, call_sid="CA-warm")
    try:
        params = await _answer_inbound(edge_settings)  # the voice webhook: CallReceived, no stream yet
        events = EventLog(params["call_id"])
        await events.follow(settings, lambda log: "AgentSpeechFinished" in log.kinds(), within=90)
        before_the_stream = events.kinds()

        await sim.open(params)  # Twilio starts the media stream only now
        await events.follow(settings, lambda log: "MediaStreamStarted" in log.kinds(), within=30)
        await _until(lambda: _loud_frames(sim.audio.heard) >= 50, within=30)
    finally:
        await sim.hang_up()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    context = f"{events.kinds()}\n{log.read_text()[-3000:]}"
    assert "MediaStreamStarted" not in before_the_stream, context
    assert before_the_stream.index("GeminiSessionOpened") < before_the_stream.index("AgentSpeechStarted"), (
        context
    )
    agent_lines = [e.text for e in events.events if type(e).__name__ == "TranscriptSegment"]
    assert GREETING in agent_lines, context  # the agent's own greeting, asked of the model on open
    # The greeting was kept for the stream and played on it: a second of agent speech at least.
    assert _loud_frames(sim.audio.heard) >= 50, f"heard {len(sim.audio.heard)} frames; {context}"
