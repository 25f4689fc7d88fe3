"""`voiceagent call simulate`: a scripted caller against the running dev platform, live on screen."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from aiokafka import TopicPartition
from rich.console import Console
from twilio.request_validator import RequestValidator

from edge.audio.speech import synthesize, to_rate
from edge.twiml import media_stream_url
from infra.kafka import make_consumer
from infra.settings import KafkaSettings
from schemas.catalog import CALL_EVENTS
from schemas.codec import Codec, DecodeError
from voiceagent.caller import Heard, SimulatedCaller, to_frames
from voiceagent.devfile import DevAddresses
from voiceagent.seed import find_agent

CALLER_NUMBER = "+15550199999"


class SimulationError(RuntimeError):
    """The simulated call could not be placed or went wrong; the message says what to do."""


@dataclass
class Outcome:
    """How the call ended, and its audio."""

    call_id: str
    end: str
    audio: Heard

    def save(self, path: Path) -> None:
        """A stereo 8 kHz WAV: the caller on the left, what the caller heard on the right."""
        pcm = self.audio.stereo_pcm()
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(pcm.astype("<i2").tobytes())


class CallWatch:
    """Follows the call's events on the log, prints them, and lets the caller wait for them."""

    def __init__(self, console: Console) -> None:
        self.call_id: str | None = None
        self._early: list[tuple[bytes, bytes]] = []
        self.console = console
        self.kinds: list[str] = []
        self.events: list[Any] = []
        self.changed = asyncio.Condition()
        self._seen: set[str] = set()
        self._started = time.monotonic()

    async def wait(self, predicate: Any, timeout_s: float, what: str) -> None:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: predicate(self)), timeout_s)
            except TimeoutError:
                raise SimulationError(
                    f"no {what} within {timeout_s:g}s; events so far: {self.kinds}"
                ) from None

    async def follow(self, kafka: KafkaSettings, ready: asyncio.Event) -> None:
        codec = Codec.single_object()
        consumer = make_consumer(kafka, group_id=None)
        await consumer.start()
        try:
            parts = [
                TopicPartition(CALL_EVENTS.name, p)
                for p in consumer.partitions_for_topic(CALL_EVENTS.name) or ()
            ]
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            ready.set()
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        if record.key is None or record.value is None:
                            continue
                        if self.call_id is None:  # the call id is known once the edge answers
                            self._early.append((record.key, record.value))
                        elif record.key == self.call_id.encode():
                            await self._add(codec, record.value)
        finally:
            await consumer.stop()

    async def attach(self, call_id: str) -> None:
        """Follow this call from now on, including what arrived before its id was known."""
        self.call_id = call_id
        codec = Codec.single_object()
        early, self._early = self._early, []
        for key, value in early:
            if key == call_id.encode():
                await self._add(codec, value)

    async def _add(self, codec: Codec, value: bytes) -> None:
        try:
            event: Any = codec.decode(value)
        except DecodeError:
            return
        if event.event_id in self._seen:
            return
        self._seen.add(event.event_id)
        async with self.changed:
            self.events.append(event)
            self.kinds.append(type(event).__name__)
            self.changed.notify_all()
        self._print(event)

    def _print(self, event: Any) -> None:
        at = f"[dim]+{time.monotonic() - self._started:5.1f}s[/]"
        name = type(event).__name__
        if name == "TranscriptSegment":
            colour = "cyan" if event.speaker == "caller" else "green"
            self.console.print(f"{at} [{colour}]{event.speaker}: {event.text}[/]")
        elif name in ("CallEnded", "CallFailed"):
            self.console.print(f"{at} [bold]{name}[/] reason={event.reason}")
        else:
            self.console.print(f"{at} {name}")


async def simulate_call(
    addresses: DevAddresses,
    console: Console,
    *,
    agent: str,
    turns: list[str],
    wav: Path | None,
    outbound: bool,
    reply_timeout_s: float,
) -> Outcome:
    """Place the call, speak each turn after the agent's previous reply, hang up, report."""
    if outbound:
        raise SimulationError(
            "--outbound needs a telephony provider to ring the simulator, and the offline dev stack "
            "has none yet. Use an inbound simulated call, or configure real Twilio credentials."
        )
    number, greeting = _agent_number(addresses, agent)
    watch = CallWatch(console)
    ready = asyncio.Event()
    follower = asyncio.create_task(watch.follow(KafkaSettings(bootstrap=addresses.bootstrap), ready))
    await asyncio.wait_for(ready.wait(), 15)
    parameters = await _answer(addresses, number)
    call_id = parameters["call_id"]
    console.print(f"calling {number} (agent {agent}); call id {call_id}")
    if addresses.standin_control_url:
        await _script_standin(addresses.standin_control_url, call_id, turns, greeting)
    await watch.attach(call_id)
    caller = SimulatedCaller(
        media_stream_url(addresses.edge_url), addresses.twilio_auth_token,
        stream_sid="MZ" + uuid.uuid4().hex, call_sid="CA" + uuid.uuid4().hex,
    )  # fmt: skip
    try:
        await caller.open(parameters)
        await watch.wait(
            lambda w: "GeminiSessionOpened" in w.kinds or "GeminiSessionResumed" in w.kinds,
            60,
            "Gemini session",
        )
        if greeting:
            await _await_reply(watch, caller, 1, reply_timeout_s)
        for index, frames in enumerate(_caller_audio(turns, wav), start=1):
            caller.say(frames)
            await caller.said()
            await _await_reply(watch, caller, index + (1 if greeting else 0), reply_timeout_s)
        await caller.hang_up()
        await watch.wait(lambda w: "CallEnded" in w.kinds or "CallFailed" in w.kinds, 30, "end of the call")
    finally:
        if not caller.closed.is_set():
            await caller.hang_up()
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    last = next(e for e in reversed(watch.events) if type(e).__name__ in ("CallEnded", "CallFailed"))
    return Outcome(call_id, f"{type(last).__name__} ({last.reason})", caller.audio)


async def _await_reply(watch: CallWatch, caller: SimulatedCaller, replies: int, timeout_s: float) -> None:
    """Wait until the agent finished its n-th reply (or was cut off) and the caller heard it."""

    def done(w: CallWatch) -> bool:
        return w.kinds.count("AgentSpeechFinished") + w.kinds.count("AgentInterrupted") >= replies

    await watch.wait(done, timeout_s, f"agent reply #{replies}")
    finished = [e for e in watch.events if type(e).__name__ == "AgentSpeechFinished"]
    if finished:
        utterance = finished[-1].utterance_id
        deadline = time.monotonic() + timeout_s
        while utterance not in caller.audio.marks and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def _caller_audio(turns: list[str], wav: Path | None) -> list[list[bytes]]:
    if wav is not None:
        return [to_frames(_read_wav(wav))]
    audio = []
    for text in turns:
        samples, rate = synthesize(text)
        audio.append(to_frames(to_rate(samples, rate, 8000)))
    return audio


def _read_wav(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path), "rb") as source:
        if source.getsampwidth() != 2:
            raise SimulationError(f"{path}: only 16-bit PCM WAV files are supported")
        frames = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
        channels, rate = source.getnchannels(), source.getframerate()
    mono = frames.reshape(-1, channels).mean(axis=1).astype(np.int16) if channels > 1 else frames
    return to_rate(mono, rate, 8000)


def _agent_number(addresses: DevAddresses, agent: str) -> tuple[str, str | None]:
    with httpx.Client(base_url=addresses.api_url, timeout=10) as client:
        found = find_agent(client, addresses.api_key, agent)
    if found is None:
        raise SimulationError(f"no agent {agent!r} visible to the dev API key; see {addresses.api_url}/docs")
    config = found.get("config") or {}
    numbers = config.get("phone_numbers") or []
    if not numbers:
        raise SimulationError(f"agent {agent!r} has no phone number; publish a version with phone_numbers")
    return str(numbers[0]), config.get("greeting")


async def _answer(addresses: DevAddresses, number: str) -> dict[str, str]:
    """What Twilio does first: POST /twilio/voice, signed; the TwiML's <Parameter>s come back."""
    url = addresses.edge_url + "/twilio/voice"
    form = {
        "CallSid": "CA" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": CALLER_NUMBER,
        "To": number,
    }
    signature = RequestValidator(addresses.twilio_auth_token).compute_signature(url, form)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    parameters = dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)"', response.text))
    if response.status_code != 200 or "call_id" not in parameters:
        raise SimulationError(
            f"the edge did not connect the call: HTTP {response.status_code} {response.text[:300]}"
        )
    return parameters


async def _script_standin(control_url: str, call_id: str, turns: list[str], greeting: str | None) -> None:
    """The offline stand-in cannot transcribe; tell it what the caller will say and what to answer."""
    script: dict[str, Any] = {
        "turns": [
            {"caller": t, "reply": f"You said: {t}. This is the offline stand-in for Gemini."} for t in turns
        ]
    }
    if greeting:
        script["greeting"] = greeting
    async with httpx.AsyncClient(timeout=10) as client:
        await client.put(f"{control_url}/scripts/{call_id}", json=script)
