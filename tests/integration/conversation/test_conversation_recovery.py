"""The Live session breaks mid-call (goAway, a 1011 close, a malformed frame) and the call goes on.

Same stack as the conversation flow: simulated Twilio caller → edge → bridge → worker process →
stand-in through google-genai, over the real broker. Faults come from the stand-in's control port.
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.server import EdgeServer
from edge.twiml import media_stream_url
from infra.settings import Settings
from streams.standin.script import TEXT_REPLY
from streams.standin.server import StandIn
from tests.integration.conversation.calls import (
    AUTH_TOKEN,
    EventLog,
    _answer_inbound,
    _publish_agent,
    _start_worker,
    fresh_app_id,
    until_routed,
)
from tests.integration.edge.edge_sim import speech
from voiceagent.caller import SimulatedCaller, to_frames

pytestmark = pytest.mark.integration

ANSWER = "Yes, I am still here."
SCRIPT = {
    "turns": [
        {"caller": "Hello?", "reply": "Hello, how can I help?"},
        {"caller": "Are you there?", "reply": ANSWER},
    ]
}


@dataclass
class Call:
    call_id: str
    sim: SimulatedCaller
    events: EventLog
    control: httpx.AsyncClient
    settings: Settings
    worker_log: Path

    async def until(self, check: Any, within: float = 20) -> None:
        try:
            await self.events.follow(self.settings, check, within=within)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.worker_log.read_text()[-3000:]}") from None

    def of(self, kind: str) -> list[Any]:
        return [e for e in sorted(self.events.events, key=lambda e: e.seq) if type(e).__name__ == kind]

    async def control_post(self, path: str, body: dict[str, Any]) -> int:
        response = await self.control.post(f"{path}/{self.call_id}", json=body)
        assert response.status_code == 200, response.text
        return int(response.json()["connections"])


@asynccontextmanager
async def live_call(
    settings: Settings, standin: StandIn, edge: tuple[EdgeServer, Settings], tmp_path: Path
) -> AsyncIterator[Call]:
    _server, edge_settings = edge
    agent_id = f"agent-{uuid.uuid4().hex[:8]}"
    await _publish_agent(settings, agent_id, f"kb-{uuid.uuid4().hex[:8]}")
    await until_routed(_server, agent_id)
    # The worker's group starts at the end of the inputs as they are now, before the call.
    app_id = await fresh_app_id(settings, "conv")
    params = await _answer_inbound(edge_settings)
    call_id = params["call_id"]
    standin.put_script(call_id, _parse(SCRIPT))
    log = tmp_path / "worker.log"
    worker: subprocess.Popen[bytes] = _start_worker(settings, standin, log, app_id=app_id)
    media_url = media_stream_url(edge_settings.twilio.public_base_url)
    sim = SimulatedCaller(media_url, AUTH_TOKEN, stream_sid="MZ" + uuid.uuid4().hex, call_sid="CA-rec")
    async with httpx.AsyncClient(base_url=standin.control_url) as control:
        call = Call(call_id, sim, EventLog(call_id), control, settings, log)
        try:
            await sim.open(params)
            await call.until(lambda log: "ResumptionHandleUpdated" in log.kinds(), within=60)
            yield call
        finally:
            await sim.hang_up()
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)


def _parse(body: dict[str, Any]) -> Any:
    from streams.standin.script import parse_script

    return parse_script(body)


async def test_conversation_go_away_reconnects_with_the_latest_handle_before_the_drop(
    settings: Settings, standin: StandIn, edge: tuple[EdgeServer, Settings], tmp_path: Path
) -> None:
    async with live_call(settings, standin, edge, tmp_path) as call:
        call.sim.say(to_frames(speech("Hello?", 8000)))
        await call.until(lambda log: "AgentSpeechFinished" in log.kinds())
        assert await call.control_post("/go-away", {"time_left_s": 10}) == 1
        await call.until(lambda log: "GeminiSessionResumed" in log.kinds())
        call.sim.say(to_frames(speech("Are you there?", 8000)))
        await call.until(lambda log: log.kinds().count("AgentSpeechFinished") >= 2)

    closed = call.of("GeminiSessionClosed")
    assert [(c.reason, c.close_code) for c in closed][:1] == [("go_away", None)]
    [resumed] = call.of("GeminiSessionResumed")
    assert resumed.fresh_session is False
    # The latest handle the session had when it reconnected (the log orders both).
    latest = [u.handle for u in call.of("ResumptionHandleUpdated") if u.seq < resumed.seq][-1]
    assert resumed.resumption_handle == latest
    # The worker left before the stand-in's deadline: nothing was closed on it with an error.
    assert all(c.reason != "error" for c in closed)
    [session] = standin.sessions(call.call_id)
    assert session["resumed"] == 1
    caller = [e.text for e in call.of("TranscriptSegment") if e.speaker == "caller"]
    assert caller == ["Hello?", "Are you there?"]


async def test_conversation_model_error_and_malformed_frame_are_recorded_and_apologised_for(
    settings: Settings, standin: StandIn, edge: tuple[EdgeServer, Settings], tmp_path: Path
) -> None:
    async with live_call(settings, standin, edge, tmp_path) as call:
        call.sim.say(to_frames(speech("Hello?", 8000)))
        await call.until(lambda log: "AgentSpeechFinished" in log.kinds())
        assert await call.control_post("/fail", {"code": 1011, "reason": "Internal error encountered."}) == 1
        await call.until(lambda log: "GeminiSessionResumed" in log.kinds())
        await call.until(lambda log: log.kinds().count("AgentSpeechFinished") >= 2)  # the apology
        assert await call.control_post("/inject", {"raw": "{this is not json"}) == 1
        await call.until(lambda log: log.kinds().count("GeminiSessionResumed") >= 2)
        await call.until(lambda log: log.kinds().count("AgentSpeechFinished") >= 3)
        call.sim.say(to_frames(speech("Are you there?", 8000)))
        await call.until(
            lambda log: any(
                type(e).__name__ == "TranscriptSegment" and e.text == "Yes, I am still here."
                for e in log.events
            )
        )

    errors = [(c.reason, c.close_code) for c in call.of("GeminiSessionClosed") if c.reason == "error"]
    assert errors == [("error", 1011), ("error", 1007)]
    assert all(not r.fresh_session for r in call.of("GeminiSessionResumed"))
    agent = [e.text for e in call.of("TranscriptSegment") if e.speaker == "agent"]
    assert agent.count(TEXT_REPLY) == 2, agent  # the stand-in's answer to each apology prompt
    assert call.sim.audio.heard, "the caller heard the agent"
