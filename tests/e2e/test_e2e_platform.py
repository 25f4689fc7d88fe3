"""End to end: the platform started as `voiceagent dev` does, a caller, and the operator's API.

The platform runs as `voiceagent dev` in a subprocess (pointed at this session's broker and
database, as it would be at external ones); the caller is the product's own simulator; every
check goes through the public surfaces: the Twilio webhooks, the media WebSocket, the event
log and the REST API.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from edge.audio.speech import synthesize, to_rate
from edge.twiml import media_stream_url
from infra.process import free_port
from infra.settings import KafkaSettings, Settings
from schemas.catalog import CALL_INPUTS
from streams.webhooks.signing import verify
from tests.integration.helpers import start_group_at_end
from voiceagent.caller import SimulatedCaller, to_frames
from voiceagent.devfile import DevAddresses
from voiceagent.simulate import CallWatch, SimulationError, _answer, simulate_call

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]
NUMBER = "+15550100777"


@pytest.fixture(scope="module")
def platform(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevAddresses]:
    data_dir = tmp_path_factory.mktemp("dev")
    edge_port = free_port()
    app_id = f"e2e-{uuid.uuid4().hex[:6]}"
    asyncio.run(start_group_at_end(settings.kafka, app_id, CALL_INPUTS.name))
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "VOICE_DATA_DIR": str(data_dir),
        "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
        "VOICE_KAFKA__PARTITIONS_OVERRIDE": str(settings.kafka.partitions_override or ""),
        "VOICE_DATABASE__URL": settings.database.url or "",
        "VOICE_EDGE__PORT": str(edge_port),
        "VOICE_EDGE__BRIDGE_PORT": str(free_port()),
        "VOICE_API__PORT": str(free_port()),
        "VOICE_TWILIO__PUBLIC_BASE_URL": f"http://127.0.0.1:{edge_port}",
        "VOICE_STREAMS__APP_ID": app_id,
    }
    log = data_dir / "dev.out"
    with log.open("ab") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "voiceagent.cli", "dev"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 150
        while not (data_dir / "dev.json").exists():
            assert dev.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield DevAddresses.read(data_dir)
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=60)
    assert "stopped cleanly" in log.read_text()


def _api(addresses: DevAddresses) -> httpx.Client:
    return httpx.Client(
        base_url=addresses.api_url, headers={"Authorization": f"Bearer {addresses.api_key}"}, timeout=10
    )


def _until(fetch: Any, ok: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = fetch()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"gave up waiting; last answer: {value}"
        time.sleep(0.3)


class _BookingHook(BaseHTTPRequestHandler):
    """The restaurant's own booking endpoint: a webhook tool's receiver, on 127.0.0.1."""

    requests: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
        answer = json.dumps({"booked": True, "table": 12}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def booking_hook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BookingHook)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/book"
    finally:
        server.shutdown()


BOOK_TABLE = {
    "name": "book_table",
    "description": "Book a table for tonight",
    "parameters": {"type": "object", "properties": {"party": {"type": "integer"}}, "required": ["party"]},
}


def _agent_with_knowledge(api: httpx.Client, hook_url: str) -> str:
    base = api.post("/api/knowledge/bases", json={"name": "Chez E2E"})
    assert base.status_code in (200, 201, 202), base.text
    kb_id = base.json()["kb_id"] if base.content else base.headers["Location"].rsplit("/", 1)[-1]
    doc = api.post(
        f"/api/knowledge/bases/{kb_id}/documents",
        params={"title": "Opening hours"},
        content=b"Opening hours: Chez E2E opens daily from nine in the morning until late.",
        headers={"Content-Type": "text/plain"},
    )
    assert doc.status_code in (200, 201, 202), doc.text
    _until(
        lambda: api.get("/api/knowledge/search", params={"q": "opening hours", "kb_id": kb_id}).json(), bool
    )
    config = {
        "system_prompt": "You are the booking line of Chez E2E.",
        "phone_numbers": [NUMBER],
        "knowledge_base_ids": [kb_id],
        "tools": [BOOK_TABLE | {"webhook_url": hook_url, "timeout_ms": 3000}],
        "silence_timeout_s": 120,
        "record_calls": True,
    }
    agent = api.post("/api/agents", json={"name": f"e2e-{uuid.uuid4().hex[:6]}", "config": config})
    assert agent.status_code in (200, 201, 202), agent.text
    return str(agent.json()["agent_id"] if agent.content else agent.headers["Location"].rsplit("/", 1)[-1])


async def _answered(addresses: DevAddresses) -> dict[str, str]:
    # The edge learns the new number from the agent events it follows; give it a moment.
    for _ in range(60):
        try:
            return await _answer(addresses, NUMBER)
        except SimulationError:
            await asyncio.sleep(0.5)
    return await _answer(addresses, NUMBER)


async def _call(addresses: DevAddresses) -> tuple[str, CallWatch, SimulatedCaller]:
    from rich.console import Console

    watch = CallWatch(Console(quiet=True))
    ready = asyncio.Event()
    follower = asyncio.create_task(watch.follow(KafkaSettings(bootstrap=addresses.bootstrap), ready))
    await asyncio.wait_for(ready.wait(), 15)
    parameters = await _answered(addresses)
    call_id = parameters["call_id"]
    script = {
        "turns": [
            {
                "caller": "When are you open?",
                "tool_calls": [
                    {"name": "search_knowledge", "args": {"query": "opening hours"}},
                    {"name": "book_table", "args": {"party": 2}},
                ],
                "after_tool_reply": "Let me read you our notes. {result} I have also booked you a table for "
                "tonight; is there anything else you would like to know about the restaurant?",
            },
            {
                "caller": "No thanks, goodbye.",
                "tool_calls": [{"name": "end_call", "args": {"reason": "completed"}}],
                "after_tool_reply": "Goodbye, and thank you for calling.",
            },
        ]
    }
    assert addresses.standin_control_url is not None
    async with httpx.AsyncClient() as client:
        await client.put(f"{addresses.standin_control_url}/scripts/{call_id}", json=script)
    await watch.attach(call_id)
    caller = SimulatedCaller(
        media_stream_url(addresses.edge_url), addresses.twilio_auth_token,
        stream_sid="MZ" + uuid.uuid4().hex, call_sid="CA" + uuid.uuid4().hex,
    )  # fmt: skip
    question = to_frames(to_rate(*_speech("When are you open?"), 8000))
    goodbye = to_frames(to_rate(*_speech("No thanks, goodbye."), 8000))
    try:
        await caller.open(parameters)
        await watch.wait(lambda w: "GeminiSessionOpened" in w.kinds, 60, "session")
        caller.say(question)
        await watch.wait(lambda w: "AgentSpeechStarted" in w.kinds, 60, "agent speech")
        await asyncio.sleep(1.5)
        caller.say(goodbye)  # talks over the agent: barge-in
        await watch.wait(lambda w: "CallEnded" in w.kinds or "CallFailed" in w.kinds, 60, "end of call")
    finally:
        if not caller.closed.is_set():
            await caller.hang_up()
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    return call_id, watch, caller


def _speech(text: str) -> tuple[Any, int]:
    return synthesize(text)


def test_e2e_inbound_call_with_tool_calls_and_barge_in_shows_up_in_the_api(
    platform: DevAddresses, booking_hook: str
) -> None:
    with _api(platform) as api:
        _agent_with_knowledge(api, booking_hook)
        call_id, watch, caller = asyncio.run(_call(platform))
        kinds = watch.kinds
        assert "AgentInterrupted" in kinds, ", ".join(kinds)
        assert "CallEnded" in kinds, kinds
        assert caller.audio.clears >= 1
        assert len(caller.audio.heard) > 50  # over a second of agent audio reached the caller

        call = _until(
            lambda: api.get(f"/api/calls/{call_id}"), lambda r: r.status_code == 200 and r.json()["ended_at"]
        )
        body = call.json()
        assert body["status"] == "completed", body
        assert body["end_reason"] == "completed", body  # the reason the model gave end_call
        assert body["ended_by"] == "agent", body
        assert body["tool_calls"] == 3
        assert body["interruptions"] >= 1
        timeline = [e["event_type"] for e in api.get(f"/api/calls/{call_id}/timeline").json()]
        assert timeline[0] == "CallReceived"
        assert "CallEnded" in timeline
        transcript = api.get(f"/api/calls/{call_id}/transcript").json()
        # The barge-in cuts the agent short, so its words are in the tool result, not the transcript.
        assert any(s["speaker"] == "agent" for s in transcript), transcript
        tools = {t["name"]: t for t in api.get(f"/api/calls/{call_id}/tool-calls").json()}
        assert sorted(tools) == ["book_table", "end_call", "search_knowledge"]
        assert "nine in the morning" in str(tools["search_knowledge"]), tools
        # The webhook tool: the restaurant's endpoint got the call's signed request, the model its answer.
        assert '"table": 12' in str(tools["book_table"]), tools
        ((headers, request),) = _BookingHook.requests
        assert json.loads(request)["call_id"] == call_id
        assert json.loads(request)["arguments"] == {"party": 2}
        timestamp = int(headers["x-voice-timestamp"])
        # Signed with the tenant's own key, which its admin reads from the API (ADR 27); dev derives
        # it from the empty default platform secret, production refuses to start without one.
        key = api.get("/api/webhook-signing-key").json()["tool_key"]
        assert verify(key, timestamp, request, headers["x-voice-signature"], now=int(time.time()))
        today = datetime.now(UTC).date()
        analytics = api.get(
            "/api/analytics", params={"date_from": str(today), "date_to": str(today + timedelta(days=1))}
        ).json()
        assert analytics["summary"]["calls"] >= 1, analytics


def test_e2e_outbound_call_rings_the_simulated_phone_and_shows_up_in_the_api(platform: DevAddresses) -> None:
    from rich.console import Console

    assert platform.twilio_standin_url is not None  # no Twilio account: dev runs the offline stand-in
    outcome = asyncio.run(
        simulate_call(
            platform, Console(quiet=True), agent="demo", turns=["Hello, who is calling?", "Thanks, bye."],
            wav=None, outbound=True, reply_timeout_s=60,
        )
    )  # fmt: skip
    assert outcome.end.startswith("CallEnded"), outcome.end
    assert len(outcome.audio.heard) > 50  # the phone heard the agent over the Media Stream
    with _api(platform) as api:
        call = _until(
            lambda: api.get(f"/api/calls/{outcome.call_id}"),
            lambda r: r.status_code == 200 and r.json()["ended_at"],
        )
        body = call.json()
        assert (body["direction"], body["status"]) == ("outbound", "completed"), body
        assert body["to_number"].startswith("+1555016"), body
        assert body["answered_at"] is not None, body
        timeline = [e["event_type"] for e in api.get(f"/api/calls/{outcome.call_id}/timeline").json()]
        assert "CallEnded" in timeline, timeline
        transcript = _until(
            lambda: api.get(f"/api/calls/{outcome.call_id}/transcript").json(),
            lambda segments: {"caller", "agent"} <= {s["speaker"] for s in segments},
        )
        said = " ".join(s["text"] for s in transcript if s["speaker"] == "agent")
        assert "You said: Hello, who is calling?" in said, transcript


def test_e2e_an_agent_transferring_an_inbound_call_ends_it_transferred(platform: DevAddresses) -> None:
    from rich.console import Console

    outcome = asyncio.run(
        simulate_call(
            platform, Console(quiet=True), agent="demo", turns=["Can I talk to a person, please?"],
            wav=None, outbound=False, reply_timeout_s=60, transfer_to="+15550123456",
        )
    )  # fmt: skip
    # The Twilio stand-in accepted the edge's <Dial> for the call it put through, and told the caller.
    assert outcome.transferred_to == "+15550123456", outcome
    assert outcome.end == "CallEnded (transferred)", outcome.end
    with _api(platform) as api:
        call = _until(
            lambda: api.get(f"/api/calls/{outcome.call_id}"),
            lambda r: r.status_code == 200 and r.json()["ended_at"],
        )
        body = call.json()
        assert (body["direction"], body["status"]) == ("inbound", "completed"), body
        assert (body["end_reason"], body["ended_by"]) == ("transferred", "agent"), body
        timeline = _until(
            lambda: api.get(f"/api/calls/{outcome.call_id}/timeline").json(),
            lambda events: "TelephonyStatusChanged" in [e["event_type"] for e in events],
        )
        kinds = [e["event_type"] for e in timeline]
        assert "TransferRequested" in kinds, kinds
        assert "CallFailed" not in kinds, kinds
        # The caller's phone played the agent's goodbye ("I am transferring you...") to its end,
        # its mark came back, before the transfer moved the call: the worker waits for that.
        spoken = [e["payload"]["utterance_id"] for e in timeline if e["event_type"] == "AgentSpeechStarted"]
        assert len(spoken) >= 2, spoken  # the greeting, then the goodbye
        assert spoken[-1] in outcome.audio.marks, (spoken, outcome.audio.marks)
        # Twilio's one callback for a number's call: completed, once the transferred caller hangs up.
        (status,) = [e for e in timeline if e["event_type"] == "TelephonyStatusChanged"]
        assert status["payload"]["status"] == "completed", status


def test_e2e_simulating_an_agent_that_does_not_exist_names_the_agents_that_do(platform: DevAddresses) -> None:
    from rich.console import Console

    with pytest.raises(SimulationError) as caught:
        asyncio.run(
            simulate_call(
                platform, Console(quiet=True), agent="demoo", turns=["Hello?"], wav=None,
                outbound=False, reply_timeout_s=10,
            )
        )  # fmt: skip
    message = str(caught.value)
    assert "no agent 'demoo'" in message
    assert "demo" in message.split("agents:", 1)[1], message
