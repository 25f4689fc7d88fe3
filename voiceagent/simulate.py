"""`voiceagent call simulate`: a scripted caller against the running dev platform, live on screen."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
import uuid
import wave
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from aiokafka import ConsumerRecord, TopicPartition
from rich.console import Console
from twilio.request_validator import RequestValidator
from websockets.exceptions import InvalidHandshake

from edge.audio.speech import synthesize, to_rate
from edge.twiml import media_stream_url
from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.settings import KafkaSettings
from schemas.catalog import CALL_EVENTS
from schemas.codec import Codec, DecodeError
from streams.telephony.standin.phone import PhoneLine, TwiMLError, connect_stream
from voiceagent.caller import Heard, SimulatedCaller, to_frames
from voiceagent.devfile import DevAddresses
from voiceagent.seed import find_agent

CALLER_NUMBER = "+15550199999"
TRANSFER_WAIT_S = 20.0
"""How long a call the agent is transferring may take to reach Twilio, once the caller is done:
the worker waits up to 10 s for the model's goodbye to end (``streams.sessions.session``)."""


class SimulationError(RuntimeError):
    """The simulated call could not be placed or went wrong; the message says what to do."""


@contextlib.contextmanager
def _reaching(service: str, address: str) -> Iterator[None]:
    """Turn a failed HTTP exchange with one of the platform's services into a SimulationError
    that names the service and its address: the CLI prints these, not tracebacks."""
    try:
        yield
    except httpx.TransportError as err:  # refused, timed out, reset: the service is not there
        raise SimulationError(
            f"{service} does not answer at {address} ({type(err).__name__}); is `voiceagent dev` running?"
        ) from err
    except httpx.HTTPStatusError as err:
        raise SimulationError(
            f"{service} at {address} answered HTTP {err.response.status_code}: {err.response.text[:300]}"
        ) from err


@dataclass
class Outcome:
    """How the call ended, and its audio."""

    call_id: str
    end: str
    audio: Heard
    transferred_to: str | None = None
    failed: bool = False
    """The call ended in CallFailed (a transfer that failed, say), not CallEnded."""

    def save(self, path: Path) -> None:
        """A stereo 8 kHz WAV: the caller on the left, what the caller heard on the right."""
        pcm = self.audio.stereo_pcm()
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(pcm.astype("<i2").tobytes())


async def follow_call_events(
    kafka: KafkaSettings, ready: asyncio.Event, on_record: Callable[[bytes, bytes], Awaitable[None]]
) -> None:
    """Hand every call event from now on (each partition from its end) to ``on_record``; forever."""

    async def offer(record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is not None and record.value is not None:
            await on_record(record.key, record.value)

    await follow_call_records(kafka, ready, offer)


async def follow_call_records(
    kafka: KafkaSettings,
    ready: asyncio.Event,
    on_record: Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]],
    **consumer_options: Any,
) -> None:
    """Hand every call-event record from now on (each partition from its end) to ``on_record``; forever.

    ``consumer_options`` override the consumer's settings (a bench's shorter fetch wait, say)."""
    consumer = make_consumer(kafka, group_id=None, **consumer_options)
    await start_consumer(consumer)
    try:
        parts = [
            TopicPartition(CALL_EVENTS.name, p) for p in consumer.partitions_for_topic(CALL_EVENTS.name) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        ready.set()
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    await on_record(record)
    finally:
        await stop_consumer(consumer)


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

        async def offer(key: bytes, value: bytes) -> None:
            await self.offer(key, value, codec)

        await follow_call_events(kafka, ready, offer)

    async def offer(self, key: bytes, value: bytes, codec: Codec) -> None:
        """One call event from the log: kept if it is this call's (or may be, before attach)."""
        if self.call_id is None:  # the call id is known once the edge answers
            self._early.append((key, value))
        elif key == self.call_id.encode():
            await self._add(codec, value)

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
        if self.console.quiet:  # rich renders the markup even for a quiet console
            return
        at = f"[dim]+{time.monotonic() - self._started:5.1f}s[/]"
        name = type(event).__name__
        if name == "TranscriptSegment":
            colour = "cyan" if event.speaker == "caller" else "green"
            self.console.print(f"{at} [{colour}]{event.speaker}: {event.text}[/]")
        elif name in ("CallEnded", "CallFailed"):
            self.console.print(f"{at} [bold]{name}[/] reason={event.reason}")
        else:
            self.console.print(f"{at} {name}")

    def note(self, text: str) -> None:
        """A line about the call that is no event on its log (what the phone saw), timed alike."""
        if not self.console.quiet:
            self.console.print(f"[dim]+{time.monotonic() - self._started:5.1f}s[/] {text}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """A call the platform has connected: where its Media Stream goes, with which parameters."""

    call_id: str
    call_sid: str
    media_url: str
    parameters: dict[str, str]


async def simulate_call(
    addresses: DevAddresses,
    console: Console,
    *,
    agent: str,
    turns: list[str],
    wav: Path | None,
    outbound: bool,
    reply_timeout_s: float,
    transfer_to: str | None = None,
    kafka: KafkaSettings | None = None,
) -> Outcome:
    """Place the call (or be called), speak each turn after the agent's previous reply, hang up.

    ``transfer_to``: the offline Gemini stand-in answers the last turn by transferring the call
    there (a real model decides for itself when to call ``transfer_call``). ``kafka``: how to
    read the call's events (its security settings); default: plainly, from the dev broker."""
    caller_audio = _caller_audio(turns, wav)  # a bad file is said before any call is placed
    if transfer_to is not None and not addresses.standin_control_url:
        raise SimulationError(
            "--transfer-to scripts the offline Gemini stand-in, and this platform runs a real "
            "model: ask the agent to put you through to a person instead"
        )
    found = _agent(addresses, agent)
    if transfer_to is not None:
        _check_transfer_number(found, transfer_to)
    greeting = (found.get("config") or {}).get("greeting")
    watch = CallWatch(console)
    ready = asyncio.Event()
    kafka = kafka or KafkaSettings(bootstrap=addresses.bootstrap)
    follower = asyncio.create_task(watch.follow(kafka, ready))
    phone: PhoneLine | None = None
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            await until_following(follower, ready, kafka, timeout_s=15)
            if outbound:
                phone = _phone(addresses, http)
                call = await _ring(addresses, http, phone, str(found["agent_id"]), console)
            else:
                if addresses.twilio_standin_url:
                    phone = PhoneLine(addresses.twilio_standin_url, _fictional_number("019"), http)
                call = await _call_in(addresses, found, console, phone)
            if addresses.standin_control_url:
                await _script_standin(
                    http, addresses.standin_control_url, call.call_id, turns, greeting, transfer_to
                )
            await watch.attach(call.call_id)
            audio, transferred_to = await _talk(
                addresses,
                call,
                phone,
                watch,
                caller_audio,
                greeting,
                reply_timeout_s,
                transfer_to is not None,
            )
        finally:
            if phone is not None:
                with contextlib.suppress(httpx.HTTPError):
                    await phone.hang_up()
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    return outcome_of(call.call_id, watch.events, audio, transferred_to)


def outcome_of(call_id: str, events: list[Any], audio: Heard, transferred_to: str | None) -> Outcome:
    """The outcome the call's last CallEnded or CallFailed tells."""
    last = next(e for e in reversed(events) if type(e).__name__ in ("CallEnded", "CallFailed"))
    name = type(last).__name__
    return Outcome(call_id, f"{name} ({last.reason})", audio, transferred_to, failed=name == "CallFailed")


async def until_following(
    follower: asyncio.Task[None], ready: asyncio.Event, kafka: KafkaSettings, *, timeout_s: float
) -> None:
    """Return once the follower reads the call events; SimulationError saying why if it cannot."""
    waiting = asyncio.ensure_future(ready.wait())
    try:
        await asyncio.wait({follower, waiting}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if ready.is_set():
        return
    where = f"the broker at {kafka.bootstrap}"
    if follower.done() and not follower.cancelled() and (err := follower.exception()) is not None:
        raise SimulationError(
            f"cannot read the call events from {where}: {type(err).__name__}: {err}"
        ) from err
    raise SimulationError(
        f"could not read the call events from {where} within {timeout_s:g}s; is the platform "
        "running, and its VOICE_KAFKA__* settings (security protocol, SASL, CA file) right?"
    )


def _ended(watch: CallWatch) -> bool:
    return "CallEnded" in watch.kinds or "CallFailed" in watch.kinds


async def _talk(
    addresses: DevAddresses,
    call: Connected,
    phone: PhoneLine | None,
    watch: CallWatch,
    audio: list[list[bytes]],
    greeting: str | None,
    reply_timeout_s: float,
    transfer_scripted: bool = False,
) -> tuple[Heard, str | None]:
    """Open the Media Stream, hold the conversation, hang up, and wait for the call to end.

    A transfer ends the conversation: the stand-in has redirected the call to ``<Dial>``, so
    its Media Stream stops (``stop``, as Twilio sends it); the caller hangs up after it."""
    caller = SimulatedCaller(
        call.media_url,
        addresses.twilio_auth_token,
        stream_sid="MZ" + uuid.uuid4().hex,
        call_sid=call.call_sid,
    )
    try:
        await _open_stream(caller, call)
        conversation = _converse(watch, caller, audio, bool(greeting), reply_timeout_s)
        transferred_to = await _converse_or_transfer(watch, phone, conversation, transfer_scripted)
        await caller.hang_up()
        if transferred_to is not None:
            watch.note(f"[bold]transferred[/] to {transferred_to}: the Media Stream stopped")
        if phone is not None:
            with _reaching("the offline Twilio stand-in", phone.standin_url):
                await phone.hang_up()  # the caller (or callee) hung up: the stand-in posts `completed`
        await watch.wait(_ended, 30, "end of the call")
    finally:
        if not caller.closed.is_set():
            await caller.hang_up()
    return caller.audio, transferred_to


async def _open_stream(caller: SimulatedCaller, call: Connected) -> None:
    """Open the call's Media Stream as Twilio does; SimulationError naming the address if the
    edge is not there or refuses the WebSocket."""
    try:
        await caller.open(call.parameters)
    except InvalidHandshake as err:
        raise SimulationError(
            f"the edge refused the Media Stream at {call.media_url} ({type(err).__name__}: {err})"
        ) from err
    except (OSError, TimeoutError) as err:  # refused, unreachable, or no handshake in time
        raise SimulationError(
            f"the edge's Media Stream does not answer at {call.media_url} ({type(err).__name__}); "
            "is `voiceagent dev` running?"
        ) from err


async def _converse_or_transfer(
    watch: CallWatch, phone: PhoneLine | None, conversation: Coroutine[Any, Any, None], expected: bool
) -> str | None:
    """Hold the conversation until it is over or the stand-in says the call was transferred;
    where to. A transfer the agent asked for (or was scripted to) is waited for once the
    caller is done: the worker sends it after the agent's goodbye."""
    talking = asyncio.create_task(conversation)
    if phone is None:  # no stand-in holds the call: nobody could tell of a transfer
        await talking
        return None
    transfer = asyncio.create_task(_transferred(phone))
    try:
        await asyncio.wait({talking, transfer}, return_when=asyncio.FIRST_COMPLETED)
        if transfer.done():
            return transfer.result()
        talking.result()  # the conversation's error, if it failed
        if (expected or "TransferRequested" in watch.kinds) and not _ended(watch):
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(transfer), TRANSFER_WAIT_S)
        return None
    finally:
        for task in (talking, transfer):
            task.cancel()
        await asyncio.gather(talking, transfer, return_exceptions=True)


async def _transferred(phone: PhoneLine) -> str | None:
    """Where the stand-in says the call was transferred to, once it is (None: it ended)."""
    with _reaching("the offline Twilio stand-in", phone.standin_url):
        return await phone.transferred(timeout_s=24 * 3600.0)


async def _converse(
    watch: CallWatch, caller: SimulatedCaller, audio: list[list[bytes]], greeted: bool, reply_timeout_s: float
) -> None:
    """Wait for the session (and the greeting), then speak each turn after the agent's reply."""
    await watch.wait(
        lambda w: "GeminiSessionOpened" in w.kinds or "GeminiSessionResumed" in w.kinds,
        60,
        "Gemini session",
    )
    if greeted:
        await _await_reply(watch, caller, 1, reply_timeout_s)
    for index, frames in enumerate(audio, start=1):
        if _ended(watch):  # the agent hung up: nobody is left to talk to
            return
        caller.say(frames)
        await caller.said()
        await _await_reply(watch, caller, index + (1 if greeted else 0), reply_timeout_s)


def _check_transfer_number(found: dict[str, Any], transfer_to: str) -> None:
    """The agent transfers only to its transfer_numbers: say so before the call, not after it."""
    numbers = (found.get("config") or {}).get("transfer_numbers") or []
    if transfer_to in numbers:
        return
    name = found.get("name")
    if not numbers:
        raise SimulationError(
            f"agent {name!r} has no transfer numbers, so it cannot transfer calls; publish a version "
            f"with transfer_numbers listing {transfer_to}"
        )
    raise SimulationError(
        f"agent {name!r} transfers calls only to {', '.join(map(str, numbers))}, not {transfer_to}: "
        "pass one of those to --transfer-to, or publish a version listing it in transfer_numbers"
    )


async def _call_in(
    addresses: DevAddresses, found: dict[str, Any], console: Console, phone: PhoneLine | None
) -> Connected:
    """Inbound: call the agent's number through the Twilio stand-in (so the platform can end or
    transfer the call through the REST API), or without one ring the edge as Twilio would."""
    numbers = (found.get("config") or {}).get("phone_numbers") or []
    if not numbers:
        raise SimulationError(
            f"agent {found.get('name')!r} has no phone number; publish a version with phone_numbers"
        )
    if phone is not None:
        return await _dial(addresses, phone, str(numbers[0]), found, console)
    call_sid = "CA" + uuid.uuid4().hex  # one call: the same sid on the webhook and the stream
    parameters = await _answer(addresses, str(numbers[0]), call_sid=call_sid)
    console.print(f"calling {numbers[0]} (agent {found.get('name')}); call id {parameters['call_id']}")
    return Connected(
        call_id=parameters["call_id"], call_sid=call_sid,
        media_url=media_stream_url(addresses.edge_url), parameters=parameters,
    )  # fmt: skip


async def _dial(
    addresses: DevAddresses, phone: PhoneLine, number: str, found: dict[str, Any], console: Console
) -> Connected:
    """The stand-in places the call from ``phone`` and asks the edge for its TwiML, as Twilio does."""
    edge = addresses.edge_url.rstrip("/")
    with _reaching("the offline Twilio stand-in", phone.standin_url):
        answered = await phone.dial(
            number, voice_url=f"{edge}/twilio/voice", status_callback=f"{edge}/twilio/status"
        )
    try:
        if answered.error:
            raise SimulationError(answered.error)
        target = connect_stream(answered.twiml)
    except TwiMLError as err:
        raise SimulationError(f"the edge did not connect the call: {err}") from None
    call_id = target.parameters.get("call_id", "")
    console.print(f"{phone.number} calling {number} (agent {found.get('name')}); call id {call_id}")
    return Connected(
        call_id=call_id, call_sid=answered.call_sid, media_url=target.url, parameters=target.parameters
    )


def _fictional_number(exchange: str) -> str:
    """A fictional 555-01xx number of its own, so simultaneous simulations do not share a line."""
    return f"+1555{exchange}{secrets.randbelow(10**4):04d}"


def _phone(addresses: DevAddresses, http: httpx.AsyncClient) -> PhoneLine:
    if addresses.twilio_standin_url is None:
        raise SimulationError(
            "--outbound needs the offline Twilio stand-in to ring the simulator, and this platform "
            "runs without it: `voiceagent dev` starts it only when no Twilio account is configured "
            "(VOICE_TWILIO__ACCOUNT_SID / VOICE_TWILIO__AUTH_TOKEN unset). With a real account, "
            "place the call with POST /api/calls to a real phone instead."
        )
    return PhoneLine(addresses.twilio_standin_url, _fictional_number("016"), http)


async def _ring(
    addresses: DevAddresses, http: httpx.AsyncClient, phone: PhoneLine, agent_id: str, console: Console
) -> Connected:
    """Outbound: wait as ``phone`` for the call the platform places, answer it, read its TwiML."""
    with _reaching("the offline Twilio stand-in", phone.standin_url):
        await phone.register()
    with _reaching("the platform's API", addresses.api_url):
        placed = await http.post(
            f"{addresses.api_url}/api/calls",
            json={"agent_id": agent_id, "to_number": phone.number},
            headers={"Authorization": f"Bearer {addresses.api_key}"},
        )
    if placed.status_code not in (201, 202):
        raise SimulationError(f"the API did not place the call: {placed.status_code} {placed.text[:300]}")
    call_id = placed.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    console.print(f"agent {agent_id} is calling {phone.number}; call id {call_id}")
    try:
        with _reaching("the offline Twilio stand-in", phone.standin_url):
            answered = await phone.answered(timeout_s=90)
        if answered.error:
            raise SimulationError(answered.error)
        target = connect_stream(answered.twiml)
    except TimeoutError as err:
        raise SimulationError(f"{err}: is the dialer running? See the dev logs") from None
    except TwiMLError as err:
        raise SimulationError(f"the platform answered the call without a Media Stream: {err}") from None
    if target.parameters.get("call_id") != call_id:
        raise SimulationError(f"the TwiML streams call {target.parameters.get('call_id')}, not {call_id}")
    return Connected(
        call_id=call_id, call_sid=answered.call_sid, media_url=target.url, parameters=target.parameters
    )


async def _await_reply(watch: CallWatch, caller: SimulatedCaller, replies: int, timeout_s: float) -> None:
    """Wait until the agent finished its n-th reply (or was cut off) and the caller heard it."""

    def done(w: CallWatch) -> bool:
        replied = w.kinds.count("AgentSpeechFinished") + w.kinds.count("AgentInterrupted") >= replies
        return replied or _ended(w)

    await watch.wait(done, timeout_s, f"agent reply #{replies}")
    finished = [e for e in watch.events if type(e).__name__ == "AgentSpeechFinished"]
    if finished:
        utterance = finished[-1].utterance_id
        deadline = time.monotonic() + timeout_s
        while (  # noqa: ASYNC110
            utterance not in caller.audio.marks and not caller.closed.is_set() and time.monotonic() < deadline
        ):
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
    try:
        with wave.open(str(path), "rb") as source:
            if source.getsampwidth() != 2:
                raise SimulationError(f"{path}: only 16-bit PCM WAV files are supported")
            channels, rate = source.getnchannels(), source.getframerate()
            frames = np.frombuffer(
                _whole_frames(source.readframes(source.getnframes()), channels), dtype="<i2"
            )
    except (wave.Error, EOFError) as err:  # an MP3, a truncated header, an empty file...
        raise SimulationError(f"{path}: not a WAV file the simulator can play ({err})") from err
    except OSError as err:  # missing, a directory, no permission
        raise SimulationError(f"{path}: cannot be read ({err.strerror or err})") from err
    if frames.size == 0:
        raise SimulationError(f"{path}: the WAV file holds no audio")
    mono = frames.reshape(-1, channels).mean(axis=1).astype(np.int16) if channels > 1 else frames
    return to_rate(mono, rate, 8000)


def _whole_frames(data: bytes, channels: int) -> bytes:
    """16-bit PCM cut to whole sample frames (numpy cannot read a partial one)."""
    # A file cut short mid-frame (a copy or download that stopped early) still plays: only its
    # last, partial frame is lost, as any player drops it.
    frame_bytes = 2 * channels
    return data[: len(data) - len(data) % frame_bytes]


def _agent(addresses: DevAddresses, agent: str) -> dict[str, Any]:
    try:
        with httpx.Client(base_url=addresses.api_url, timeout=10) as client:
            found = find_agent(client, addresses.api_key, agent)
    except httpx.TransportError as err:
        raise SimulationError(
            f"the platform's API does not answer at {addresses.api_url} ({type(err).__name__}); "
            "is `voiceagent dev` running?"
        ) from err
    if found is None:
        names = _agent_names(addresses)
        known = f"; agents: {', '.join(names)}" if names else ""
        raise SimulationError(f"no agent {agent!r} visible to the dev API key{known}")
    return found


def _agent_names(addresses: DevAddresses) -> list[str]:
    """The names of the first agents the dev key sees, for a helpful "no such agent" message."""
    try:
        with httpx.Client(base_url=addresses.api_url, timeout=10) as client:
            page = client.get(
                "/api/agents",
                params={"limit": 20},
                headers={"Authorization": f"Bearer {addresses.api_key}"},
            ).json()
    except (httpx.HTTPError, ValueError):
        return []
    return sorted({str(a.get("name")) for a in page.get("items", []) if a.get("status") != "archived"})


async def _answer(addresses: DevAddresses, number: str, *, call_sid: str | None = None) -> dict[str, str]:
    """What Twilio does first: POST /twilio/voice, signed; the TwiML's <Parameter>s come back."""
    url = addresses.edge_url + "/twilio/voice"
    form = {
        "CallSid": call_sid or "CA" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": CALLER_NUMBER,
        "To": number,
    }
    signature = RequestValidator(addresses.twilio_auth_token).compute_signature(url, form)
    with _reaching("the edge", addresses.edge_url):
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    parameters = dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)"', response.text))
    if response.status_code != 200 or "call_id" not in parameters:
        raise SimulationError(
            f"the edge did not connect the call: HTTP {response.status_code} {response.text[:300]}"
        )
    return parameters


async def _script_standin(
    http: httpx.AsyncClient,
    control_url: str,
    call_id: str,
    turns: list[str],
    greeting: str | None,
    transfer_to: str | None = None,
) -> None:
    """The offline stand-in cannot transcribe; tell it what the caller will say and what to answer
    (and, with ``transfer_to``, to answer the last turn by transferring the call there)."""
    script: dict[str, Any] = {
        "turns": [
            {"caller": t, "reply": f"You said: {_sentence(t)} This is the offline stand-in for Gemini."}
            for t in turns
        ]
    }
    if transfer_to is not None and script["turns"]:
        script["turns"][-1] |= {
            "reply": "",  # one answer to the turn: the goodbye after the tool
            "tool_calls": [{"name": "transfer_call", "args": {"target": transfer_to}}],
            "after_tool_reply": f"I am transferring you to {transfer_to} now.",
        }
    if greeting:
        script["greeting"] = greeting
    with _reaching("the offline Gemini stand-in's control endpoint", control_url):
        response = await http.put(f"{control_url}/scripts/{call_id}", json=script)
    if not response.is_success:  # unscripted, the stand-in would answer every turn off-script
        raise SimulationError(
            f"the offline Gemini stand-in refused the call's script: HTTP {response.status_code} "
            f"{_refusal(response)}"
        )


def _refusal(response: httpx.Response) -> str:
    """The message of a refusal: the body's ``error`` (as the stand-in's 422 has it), else its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text[:300]


def _sentence(text: str) -> str:
    """``text`` ending in one full stop, question or exclamation mark ("Thanks, bye." stays so)."""
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."
