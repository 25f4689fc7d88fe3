"""The direct Live wire against the installed google-genai: same bytes out, same messages in."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import Callable
from typing import Any

import pytest
from google import genai
from google.genai import errors, live, types
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from streams.sessions.live_wire import (
    LiveWire,
    ModelAudio,
    ServerMessage,
    caller_audio_message,
    model_audio,
    server_message,
)
from streams.sessions.recovery import classify
from streams.sessions.session import _audio_of


class WireSocket:
    """The SDK session's WebSocket, in memory: records sends, replays scripted receives."""

    def __init__(self, *incoming: bytes | BaseException) -> None:
        self.sent: list[str] = []
        self.incoming = list(incoming)

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def recv(self, decode: bool | None = None) -> bytes:
        item = self.incoming.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


@functools.cache
def sdk_client(vertexai: bool) -> genai.Client:
    if vertexai:
        return genai.Client(vertexai=True, project="p", location="us-central1")
    return genai.Client(api_key="offline")


def sdk_session(ws: WireSocket, *, vertexai: bool = False) -> live.AsyncSession:
    return live.AsyncSession(api_client=sdk_client(vertexai)._api_client, websocket=ws)  # type: ignore[arg-type]


def sdk_sent(pcm: bytes) -> str:
    ws = WireSocket()
    blob = types.Blob(data=pcm, mime_type="audio/pcm;rate=16000")
    asyncio.run(sdk_session(ws).send_realtime_input(audio=blob))
    return ws.sent[0]


def sdk_received(raw: bytes) -> types.LiveServerMessage:
    return asyncio.run(sdk_session(WireSocket(raw))._receive())


def audio_message(pcm: bytes, *, urlsafe: bool = False, role: str | None = None, parts: int = 1) -> bytes:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": encode(pcm).decode()}}
    turn: dict[str, Any] = {"parts": [part] * parts}
    if role is not None:
        turn["role"] = role
    return json.dumps({"serverContent": {"modelTurn": turn}}).encode()


@given(st.binary(max_size=2000))
@settings(max_examples=200, deadline=None)
def test_caller_audio_is_byte_for_byte_what_the_sdk_sends(pcm: bytes) -> None:
    assert caller_audio_message(pcm) == sdk_sent(pcm)


@given(
    pcm=st.binary(max_size=3000),
    urlsafe=st.booleans(),
    role=st.sampled_from([None, "model"]),
    parts=st.integers(1, 3),
)
@settings(max_examples=200, deadline=None)
def test_model_audio_carries_what_the_sdks_message_would_and_nothing_else_is_lost(
    pcm: bytes, urlsafe: bool, role: str | None, parts: int
) -> None:
    raw = audio_message(pcm, urlsafe=urlsafe, role=role, parts=parts)
    ours, theirs = server_message(raw), sdk_received(raw)
    assert isinstance(ours, ModelAudio)
    assert theirs.server_content is not None
    assert theirs.server_content.model_turn is not None
    assert ours.pcm == (_audio_of(theirs.server_content) or b"")
    # the SDK's message holds nothing beyond the model turn's audio parts
    assert theirs.model_dump(exclude_none=True).keys() == {"server_content"}
    assert theirs.server_content.model_dump(exclude_none=True).keys() == {"model_turn"}
    for part in theirs.server_content.model_turn.parts or []:
        assert part.model_dump(exclude_none=True).keys() == {"inline_data"}


@given(st.text(alphabet="ABCDEFGHabcxyz019+/-_=", max_size=12))
@settings(max_examples=1000, deadline=None)
def test_base64_the_sdk_refuses_or_reads_otherwise_is_left_to_it(data: str) -> None:
    part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}
    raw = json.dumps({"serverContent": {"modelTurn": {"parts": [part]}}}).encode()
    theirs = raised_by(sdk_received, raw)
    if theirs is not None:
        ours = raised_by(server_message, raw)
        assert type(ours) is type(theirs)
        return
    message, expected = server_message(raw), sdk_received(raw)
    assert message is not None
    assert expected.server_content is not None
    got = (
        message.pcm
        if isinstance(message, ModelAudio)
        else _audio_of(message.server_content or expected.server_content)
    )
    assert (got or b"") == (_audio_of(expected.server_content) or b"")


OTHER_MESSAGES: list[dict[str, Any]] = [
    {"setupComplete": {}},
    {"serverContent": {"turnComplete": True}},
    {"serverContent": {"interrupted": True}},
    {"serverContent": {"generationComplete": True}},
    {"serverContent": {"inputTranscription": {"text": "hello there"}}},
    {"serverContent": {"outputTranscription": {"text": "hi", "finished": True}}},
    {"serverContent": {"modelTurn": {"parts": [{"text": "a text part"}]}}},
    {
        "serverContent": {
            "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AAAA"}}]},
            "turnComplete": True,
        }
    },
    {
        "serverContent": {
            "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm", "data": "AA=="}}]}
        },
        "usageMetadata": {"promptTokenCount": 3, "responseTokenCount": 4, "totalTokenCount": 7},
    },
    {"toolCall": {"functionCalls": [{"id": "c1", "name": "end_call", "args": {"reason": "done"}}]}},
    {"toolCallCancellation": {"ids": ["c1"]}},
    {"usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 12}},
    {"usageMetadata": {"promptTokenCount": 18446744073709551617, "totalTokenCount": 1}},
    {"goAway": {"timeLeft": "10s"}},
    {"sessionResumptionUpdate": {"newHandle": "h-1", "resumable": True}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm", "data": "AA"}}]}}},
    {"serverContent": {"modelTurn": {"parts": []}}},
    {},
]


@pytest.mark.parametrize("message", OTHER_MESSAGES, ids=lambda m: ",".join(m) or "empty")
def test_every_other_message_is_the_sdks_own_conversion(message: dict[str, Any]) -> None:
    raw = json.dumps(message).encode()
    assert server_message(raw) == sdk_received(raw)


def test_a_message_with_audio_and_anything_else_is_left_to_the_sdk() -> None:
    for message in OTHER_MESSAGES:
        assert model_audio(message) is None, message


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "a", "data": "!!!"}}]}}}',
        b'{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "a", "data": 7}}]}}}',
        b"[1, 2]",
    ],
    ids=["not-json", "bad-base64", "data-not-a-string", "not-an-object"],
)
def test_bad_messages_raise_what_the_sdk_raises(raw: bytes) -> None:
    ours, theirs = raised_by(server_message, raw), raised_by(sdk_received, raw)
    assert theirs is not None
    assert type(ours) is type(theirs)
    assert str(ours) == str(theirs)


@pytest.mark.parametrize(
    ("raw", "code", "detail"),
    [
        (b'{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}', 429, "quota"),
        (b'{"error": {"code": 500, "message": "boom"}}', 500, "boom"),
        (b'{"error": {"message": "no code"}}', None, "no code"),
        (b'{"error": "plain text"}', None, "plain text"),
    ],
)
def test_an_error_body_is_a_model_failure_with_the_errors_code_and_message(
    raw: bytes, code: int | None, detail: str
) -> None:
    # The SDK passed the message's own (absent) code on as a status and raised TypeError: the
    # session recorded a malformed message (1007), whatever the error said.
    err = raised_by(server_message, raw)
    assert isinstance(err, errors.APIError)
    failure = classify(err)
    assert failure is not None
    assert (failure.code, failure.detail) == (code, detail)


def test_a_message_with_no_field_the_sdk_knows_is_ignored_and_counted() -> None:
    # The SDK raised TypeError for it, and the session dropped the connection.
    assert server_message(b'{"futureThing": {"a": 1}}') is None
    ws = WireSocket(
        b'{"futureThing": {"a": 1}}',
        b'{"anotherThing": true}',
        b'{"serverContent": {"turnComplete": true}}',
        ConnectionClosed(Close(1000, "bye"), None),
    )
    wire = LiveWire(sdk_session(ws))
    messages, failure = asyncio.run(read_all(wire))
    assert isinstance(failure, errors.APIError)
    assert len(messages) == 1
    assert isinstance(messages[0], types.LiveServerMessage)
    assert wire.ignored == 2


def raised_by(read: Callable[[bytes], object], raw: bytes) -> Exception | None:
    try:
        read(raw)
    except Exception as err:
        return err
    return None


async def read_all(wire: LiveWire) -> tuple[list[ServerMessage], Exception | None]:
    """Every message until the wire raises, and what it raised."""
    got: list[ServerMessage] = []
    try:
        async for message in wire.messages():
            got.append(message)
    except Exception as err:
        return got, err
    return got, None


def test_the_wire_reads_across_turns_and_reports_a_close_as_the_sdk_does() -> None:
    closed = ConnectionClosed(Close(1011, "internal error"), None)
    ws = WireSocket(
        audio_message(b"\x01\x02"), b'{"serverContent": {"turnComplete": true}}', audio_message(b"\x03")
    )
    ws.incoming.append(closed)
    wire = LiveWire(sdk_session(ws))
    assert wire.direct

    messages, failure = asyncio.run(read_all(wire))
    assert isinstance(failure, errors.APIError)
    assert failure.code == 1011
    assert messages[0] == ModelAudio(b"\x01\x02")
    assert messages[2] == ModelAudio(b"\x03")
    turn_end_message = messages[1]
    assert isinstance(turn_end_message, types.LiveServerMessage)
    assert turn_end_message.server_content is not None
    assert turn_end_message.server_content.turn_complete


def test_the_wire_sends_caller_audio_on_the_sessions_socket() -> None:
    ws = WireSocket()
    asyncio.run(LiveWire(sdk_session(ws)).send_audio(b"\x00\x01" * 320))
    assert ws.sent == [sdk_sent(b"\x00\x01" * 320)]


class ScriptedSession:
    """Not the SDK's session: the wire must use only its public methods."""

    def __init__(self) -> None:
        self.sent: list[types.Blob] = []
        self.turns = [[types.LiveServerMessage(setup_complete=types.LiveServerSetupComplete())], []]

    async def send_realtime_input(self, *, audio: types.Blob) -> None:
        self.sent.append(audio)

    async def receive(self) -> Any:
        for message in self.turns.pop(0):
            yield message
        if not self.turns:
            raise ConnectionError("no more turns")


def test_other_sessions_and_vertex_go_through_the_sdks_methods() -> None:
    assert not LiveWire(sdk_session(WireSocket(), vertexai=True)).direct
    session = ScriptedSession()
    wire = LiveWire(session)
    assert not wire.direct

    asyncio.run(wire.send_audio(b"\x05\x06"))
    got, failure = asyncio.run(read_all(wire))
    assert isinstance(failure, ConnectionError)
    assert len(got) == 1
    assert isinstance(got[0], types.LiveServerMessage)
    assert got[0].setup_complete is not None
    assert session.sent[0].data == b"\x05\x06"
    assert session.sent[0].mime_type == "audio/pcm;rate=16000"
