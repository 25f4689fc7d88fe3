"""The edge node over real sockets, against the real broker, with a simulated Twilio and worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from edge_sim import BridgeWorker, call_inputs_from_now, refused_code, speech
from pydantic import SecretStr
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edge.audio.vad import SpeechDetector, energy_dbfs
from edge.server import EdgeServer
from edge.telephony import RecordingTelephony
from edge.twiml import media_stream_url
from infra.process import free_port
from infra.settings import Settings
from schemas import bridge
from schemas.codec import Codec
from tests.support.agents import agent_config, publish, version_published
from voiceagent.caller import SimulatedCaller, to_frames

pytestmark = pytest.mark.integration

AUTH_TOKEN = "edge-test-auth-token"
ROUTED_NUMBER = "+15550001111"
CODEC = Codec.single_object()


class Edge:
    def __init__(self, server: EdgeServer, settings: Settings, telephony: RecordingTelephony) -> None:
        self.server = server
        self.settings = settings
        self.telephony = telephony
        self.base = settings.twilio.public_base_url
        self.media_url = media_stream_url(self.base)

    def sim(self) -> SimulatedCaller:
        return SimulatedCaller(
            self.media_url,
            AUTH_TOKEN,
            stream_sid="MZ" + uuid.uuid4().hex,
            call_sid="CA" + uuid.uuid4().hex,
        )

    def signed_post(self, path: str, form: dict[str, str], query: str = "") -> dict[str, Any]:
        url = self.base + path + (f"?{query}" if query else "")
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
        return {"url": url, "data": form, "headers": {"X-Twilio-Signature": signature}}


async def _publish_agent(settings: Settings) -> str:
    agent_id = f"agent-{uuid.uuid4().hex[:8]}"
    config = agent_config(
        ROUTED_NUMBER,
        system_prompt="Be helpful.",
        max_duration_s=600,
        silence_timeout_s=30,
        record_calls=True,
        answering_machine_policy="ignore",
    )
    await publish(settings.kafka, version_published("tenant-edge", agent_id, config))
    return agent_id


@pytest.fixture(scope="module")
async def edge(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Edge]:
    await _publish_agent(settings)
    port = free_port()
    edge_settings = settings.edge.model_copy(
        update={
            "port": port,
            "bridge_port": free_port(),
            "bridge_token_ttl_s": 4.0,
            "idle_timeout_s": 2.0,
            "recordings_dir": Path(tmp_path_factory.mktemp("recordings")),
            "max_streams": 20,
        }
    )
    twilio = settings.twilio.model_copy(
        update={"public_base_url": f"http://127.0.0.1:{port}", "auth_token": SecretStr(AUTH_TOKEN)}
    )
    test_settings = settings.model_copy(update={"edge": edge_settings, "twilio": twilio})
    telephony = RecordingTelephony()
    server = EdgeServer(test_settings, telephony=telephony)
    await server.start()
    try:
        yield Edge(server, test_settings, telephony)
    finally:
        await server.drain(deadline_s=0)
        await server.stop()


@pytest.fixture(scope="module")
async def facts(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    async with call_inputs_from_now(settings) as consumer:
        yield consumer


class FactLog:
    """Every decoded call input seen so far, shared across tests (each filters by its call id)."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    async def wait_for(
        self, consumer: AIOKafkaConsumer, match: Callable[[Any], bool], within: float = 15.0
    ) -> Any:
        async def loop() -> Any:
            while True:
                for record in self.records:
                    if match(record):
                        return record
                batches = await consumer.getmany(timeout_ms=100)
                for batch in batches.values():
                    self.records.extend(CODEC.decode(r.value) for r in batch if r.value is not None)

        return await asyncio.wait_for(loop(), within)


@pytest.fixture(scope="module")
def fact_log() -> FactLog:
    return FactLog()


def _of(kind: str, call_id: str) -> Callable[[Any], bool]:
    return lambda r: type(r).__name__ == kind and r.call_id == call_id


def _params(call_id: str, record: bool = False) -> dict[str, str]:
    return {
        "call_id": call_id,
        "tenant_id": "tenant-edge",
        "agent_id": "agent-x",
        "agent_version": "3",
        "direction": "inbound",
        "record": "true" if record else "false",
    }


async def _until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    async def loop() -> None:
        while not predicate():  # noqa: ASYNC110 - a predicate over state other tasks change
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), within)


async def test_edge_full_call(edge: Edge, facts: AIOKafkaConsumer, fact_log: FactLog) -> None:
    call_id = str(uuid.uuid4())
    sim = edge.sim()
    await sim.open(_params(call_id, record=True))
    started = await fact_log.wait_for(facts, _of("MediaStreamStarted", call_id))
    assert started.bridge_url.endswith(f"/bridge/{call_id}")
    assert started.edge_id == edge.settings.edge.edge_id
    worker = BridgeWorker()
    await worker.open(started.bridge_url, started.bridge_token)

    # Caller speech reaches the worker intact, and the edge's VAD reports it as facts.
    source8k = speech("Hello there, I would like to book a table for two people tonight.", 8000)
    sim.say(to_frames(source8k))
    await sim.said()
    await fact_log.wait_for(facts, _of("CallerSpeechStarted", call_id))
    await fact_log.wait_for(facts, _of("CallerSpeechStopped", call_id))
    received = worker.caller_pcm()
    assert all(len(f.pcm) == 640 for f in worker.audio)
    seqs = [f.seq for f in worker.audio]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # nothing dropped or reordered
    source16k = speech("Hello there, I would like to book a table for two people tonight.", 16000)
    loud = [i for i in range(0, len(received) - 320, 320) if energy_dbfs(received[i : i + 320]) > -40]
    source_loud = [
        i for i in range(0, len(source16k) - 320, 320) if energy_dbfs(source16k[i : i + 320]) > -40
    ]
    assert abs(len(loud) - len(source_loud)) <= max(5, len(source_loud) // 10)
    assert _voiced_frames(received) == pytest.approx(_voiced_frames(source16k), rel=0.2, abs=5)

    # One second of agent audio plays at real-time pace, then its mark comes back as a fact.
    before = len(sim.audio.heard)
    await worker.directive(bridge.BeginUtterance(utterance_id="utt-1"))
    await worker.play(speech("Sure, for what time would you like it?", 24000)[:24000])
    await worker.directive(bridge.PlayMark(name="reply-1"))
    mark = await fact_log.wait_for(facts, _of("PlaybackMarkReached", call_id))
    assert mark.mark_name == "reply-1"
    played, played_at = sim.audio.heard[before:], sim.audio.heard_at[before:]
    assert len(played) == 51  # 50 frames plus the resampler's 3.4 ms tail, padded with silence
    assert all(len(payload) == 160 for payload in played)
    assert played_at[-1] - played_at[0] >= 0.9
    await _until(lambda: any(isinstance(n, bridge.MarkReached) for n in worker.notices))

    # clear stops playback within one frame.
    before = len(sim.audio.heard)
    await worker.directive(bridge.BeginUtterance(utterance_id="utt-2"))
    await worker.play(np.tile(speech("One two three four five.", 24000), 3))
    await _until(lambda: len(sim.audio.heard) - before >= 15)  # the caller has heard 300 ms of it
    await worker.directive(bridge.ClearPlayback())
    await _until(lambda: bool(sim.audio.clears))
    cleared_at = sim.audio.cleared_at[-1]
    await asyncio.sleep(0.3)
    after_clear = [t for t in sim.audio.heard_at[before:] if t > cleared_at]
    assert len(after_clear) <= 1
    interrupted = await fact_log.wait_for(facts, _of("AgentInterrupted", call_id))
    assert interrupted.source == "model"
    assert interrupted.utterance_id == "utt-2"
    # What the caller had heard of it when the clear came (a frame may pass the clear on the way).
    heard_ms = 20 * len([t for t in sim.audio.heard_at[before:] if t <= cleared_at])
    assert heard_ms >= 300
    assert abs(interrupted.played_ms - heard_ms) <= 20, (interrupted.played_ms, heard_ms)
    assert interrupted.played_ms < interrupted.total_ms

    # The caller talking over the agent triggers the fast-path clear.
    clears = sim.audio.clears
    await worker.directive(bridge.BeginUtterance(utterance_id="utt-3"))
    await worker.play(np.tile(speech("Let me tell you about our menu.", 24000), 4))
    await asyncio.sleep(0.4)
    sim.say(to_frames(speech("Wait, stop, stop please.", 8000)))
    await _until(lambda: sim.audio.clears > clears)
    barge = await fact_log.wait_for(
        facts, lambda r: _of("AgentInterrupted", call_id)(r) and r.source == "edge_vad"
    )
    assert barge.utterance_id == "utt-3"
    assert barge.played_ms >= 300
    await _until(lambda: any(isinstance(n, bridge.BargeIn) for n in worker.notices))

    # DTMF, then the caller hangs up: the stream-stopped fact, the bridge closes, the recording lands.
    await sim.press("5")
    dtmf = await fact_log.wait_for(facts, _of("DtmfReceived", call_id))
    assert dtmf.digit == "5"
    await sim.hang_up()
    stopped = await fact_log.wait_for(facts, _of("MediaStreamStopped", call_id))
    assert stopped.reason == "twilio_stop"
    assert stopped.frames_gaps == 0
    assert stopped.frames_dropped == 0
    assert await worker.closed() == bridge.CLOSE_CALL_ENDED
    recording = await fact_log.wait_for(facts, _of("RecordingAvailable", call_id))
    assert recording.channels == 2
    assert recording.duration_ms > 5000

    # The token is spent once the call is over; a worker late to hear it is told so, and that
    # is routine, not a security event.
    refusals = edge.server.metrics.get("security.bridge_refused")
    assert await refused_code(started.bridge_url, started.bridge_token) == bridge.CLOSE_CALL_ENDED
    assert edge.server.metrics.get("security.bridge_refused") == refusals
    assert edge.server.metrics.get("bridge.refused_call_ended") == 1
    assert await refused_code(started.bridge_url, "not-the-token") == bridge.CLOSE_CALL_GONE
    assert edge.server.metrics.get("security.bridge_refused") == refusals + 1


def _voiced_frames(samples: np.ndarray[Any, np.dtype[np.int16]]) -> int:
    detector = SpeechDetector(2)
    return sum(detector.is_speech(samples[i : i + 320]) for i in range(0, len(samples) - 320, 320))


async def test_edge_bridge_refuses_wrong_and_expired_tokens(
    edge: Edge, facts: AIOKafkaConsumer, fact_log: FactLog
) -> None:
    call_id = str(uuid.uuid4())
    sim = edge.sim()
    await sim.open(_params(call_id))
    started = await fact_log.wait_for(facts, _of("MediaStreamStarted", call_id))
    assert await refused_code(started.bridge_url, "not-the-token") == bridge.CLOSE_BAD_TOKEN
    other = started.bridge_url.rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
    assert await refused_code(other, started.bridge_token) == bridge.CLOSE_CALL_GONE
    # The caller's audio waits in the ring buffer until a worker connects.
    await asyncio.sleep(max(0.0, (started.token_expires_at - datetime.now(UTC)).total_seconds()) + 0.1)
    assert await refused_code(started.bridge_url, started.bridge_token) == bridge.CLOSE_TOKEN_EXPIRED
    assert edge.server.metrics.get("security.bridge_refused") >= 3
    await sim.hang_up()


async def test_edge_forged_signatures_get_403(edge: Edge) -> None:
    form = {"CallSid": "CA1", "From": "+15550002222", "To": ROUTED_NUMBER}
    async with httpx.AsyncClient() as client:
        for path in ("/twilio/voice", "/twilio/status", "/twilio/stream-status"):
            signed = edge.signed_post(path, form)
            forged = await client.post(signed["url"], data=form, headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
            missing = await client.post(signed["url"], data=form)
            tampered = await client.post(
                signed["url"], data=form | {"To": "+1999"}, headers=signed["headers"]
            )
            assert (forged.status_code, missing.status_code, tampered.status_code) == (403, 403, 403)
    for headers in ({}, {"X-Twilio-Signature": "Zm9yZ2Vk"}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(edge.media_url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 403
    # Signed for https://, presented on the wss:// upgrade: refused too.
    wrong = RequestValidator(AUTH_TOKEN).compute_signature(edge.base + "/twilio/media", {})
    with pytest.raises(InvalidStatus) as refused:
        async with connect(edge.media_url, additional_headers={"X-Twilio-Signature": wrong}):
            pass
    assert refused.value.response.status_code == 403
    assert edge.server.metrics.get("security.bad_signature") >= 12


async def test_edge_voice_webhook_routes_and_refuses(
    edge: Edge, facts: AIOKafkaConsumer, fact_log: FactLog
) -> None:
    call_sid = "CA" + uuid.uuid4().hex
    form = {"CallSid": call_sid, "From": "+15550002222", "To": ROUTED_NUMBER, "CallStatus": "ringing"}
    async with httpx.AsyncClient() as client:
        answer = await client.post(**edge.signed_post("/twilio/voice", form))
        unknown = await client.post(**edge.signed_post("/twilio/voice", form | {"To": "+15559999999"}))
        status = await client.post(
            **edge.signed_post(
                "/twilio/status",
                {"CallSid": call_sid, "CallStatus": "completed", "CallDuration": "42", "SequenceNumber": "3"},
            )
        )
    assert answer.status_code == 200
    assert f'<Stream statusCallback="{edge.base}/twilio/stream-status" url="{edge.media_url}">' in answer.text
    assert '<Parameter name="agent_version" value="1" />' in answer.text
    assert '<Parameter name="record" value="true" />' in answer.text
    received = await fact_log.wait_for(
        facts, lambda r: type(r).__name__ == "CallReceived" and r.twilio_call_sid == call_sid
    )
    assert f'<Parameter name="call_id" value="{received.call_id}" />' in answer.text
    assert (received.to_number, received.tenant_id, received.agent_version) == (
        ROUTED_NUMBER,
        "tenant-edge",
        1,
    )
    assert unknown.status_code == 200
    assert "<Say>" in unknown.text
    assert "<Hangup />" in unknown.text
    assert "<Connect>" not in unknown.text
    assert status.status_code == 204
    changed = await fact_log.wait_for(facts, _of("TelephonyStatusChanged", received.call_id))
    assert (changed.status, changed.duration_s, changed.sequence_number) == ("completed", 42, 3)


async def test_edge_bad_input_is_counted_and_the_call_goes_on(
    edge: Edge, facts: AIOKafkaConsumer, fact_log: FactLog
) -> None:
    metrics = edge.server.metrics
    call_id = str(uuid.uuid4())
    sim = edge.sim()
    sim.paused = True
    await sim.open(_params(call_id))
    await fact_log.wait_for(facts, _of("MediaStreamStarted", call_id))
    before = metrics.snapshot()
    good = sim.media_frame(bytes([0xFF]) * 160)
    await sim.send_raw("this is not json")
    await sim.send_raw(b"\x00\x01binary")
    await sim.send({"event": "party", "streamSid": sim.stream_sid})
    await sim.send(good | {"streamSid": "MZwrong"})
    await sim.send(good | {"media": good["media"] | {"payload": "%%%not base64%%%"}})
    await sim.send_raw('{"event":"media","pad":"' + "x" * 20000 + '"}')
    await sim.send(sim.start_frame(_params(call_id), stream_sid="MZsecond"))
    await sim.send(good)
    await sim.send(good)  # a replayed sequence number: late, dropped
    await _until(lambda: metrics.get("bad_input.late_frame") > before.get("bad_input.late_frame", 0))
    for kind in (
        "not_json",
        "binary",
        "unknown_event",
        "wrong_stream_sid",
        "bad_base64",
        "oversized",
        "second_start",
    ):
        assert metrics.get(f"bad_input.{kind}") > before.get(f"bad_input.{kind}", 0), kind
    sim.paused = False
    await sim.press("#")
    assert (await fact_log.wait_for(facts, _of("DtmfReceived", call_id))).digit == "#"
    await sim.hang_up()
    stopped = await fact_log.wait_for(facts, _of("MediaStreamStopped", call_id))
    assert stopped.frames_dropped == 1


async def test_edge_media_before_start_and_idle_client(
    edge: Edge, facts: AIOKafkaConsumer, fact_log: FactLog
) -> None:
    metrics = edge.server.metrics
    before = metrics.get("bad_input.media_before_start")
    async with connect(edge.media_url, additional_headers={"X-Twilio-Signature": edge.sim().signature}) as ws:
        await ws.send('{"event":"media","sequenceNumber":"1","streamSid":"MZ1","media":{"payload":"/w=="}}')
        await _until(lambda: metrics.get("bad_input.media_before_start") > before)
    # A client that goes quiet is closed after the idle timeout, and the stream-stopped fact says so.
    call_id = str(uuid.uuid4())
    sim = edge.sim()
    sim.paused = True
    await sim.open(_params(call_id))
    stopped = await fact_log.wait_for(facts, _of("MediaStreamStopped", call_id), within=10)
    assert stopped.reason == "error"
    assert metrics.get("bad_input.idle_timeout") >= 1
    await sim.hang_up()


async def test_edge_drain_ends_live_calls_with_edge_shutdown(
    edge: Edge, facts: AIOKafkaConsumer, fact_log: FactLog
) -> None:
    """Runs last: it drains the module's edge node."""
    call_id = str(uuid.uuid4())
    sim = edge.sim()
    await sim.open(_params(call_id))
    started = await fact_log.wait_for(facts, _of("MediaStreamStarted", call_id))
    worker = BridgeWorker()
    await worker.open(started.bridge_url, started.bridge_token)
    await edge.server.drain(deadline_s=0.3)
    async with httpx.AsyncClient() as client:
        assert (await client.get(edge.base + "/readyz")).status_code == 503
    stopped = await fact_log.wait_for(facts, _of("MediaStreamStopped", call_id))
    assert stopped.reason == "edge_shutdown"
    assert await worker.closed() == bridge.CLOSE_EDGE_SHUTDOWN
    await sim.hang_up()
