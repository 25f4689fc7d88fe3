"""The Live session's two hot messages, caller audio out and model audio in, on the SDK's own socket.

Every 20 ms frame of caller audio goes through ``send_realtime_input`` and every model audio
chunk through ``receive()``. The SDK validates, converts and dumps pydantic models for each:
about 45 µs per caller frame and 65 µs per audio chunk, a quarter of a session worker's CPU
(ADR 15). Those two messages have a fixed shape, so this module writes and reads them directly
on the session's WebSocket; every other message (set-up, client content, tool calls and
responses, transcriptions, usage, resumption, goAway, errors) still goes through the SDK. Tests
check that what is sent is byte for byte what the SDK sends, and that what is read equals what
the SDK would have made of the same message, on the installed version.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from google.genai import _live_converters, errors, live, types
from websockets.exceptions import ConnectionClosed
from websockets.frames import CLOSE_CODE_EXPLANATIONS

from schemas import bridge

_AUDIO_MIME = f"audio/pcm;rate={bridge.CALLER_RATE}"
# The SDK's own JSON for realtime audio: json.dumps' default separators, snake_case keys, and
# bytes as URL-safe base64 (its encode_unserializable_types).
_AUDIO_HEAD = '{"realtime_input": {"audio": {"data": "'
_AUDIO_TAIL = f'", "mime_type": "{_AUDIO_MIME}"}}}}}}'
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_NO_KWARGS = types.LiveServerMessage().model_dump()  # what AsyncSession._receive passes along

log = logging.getLogger(__name__)


def caller_audio_message(pcm: bytes) -> str:
    """The realtime-input message for 16 kHz PCM16 caller audio, as the SDK would write it."""
    return _AUDIO_HEAD + base64.urlsafe_b64encode(pcm).decode("ascii") + _AUDIO_TAIL


@dataclass(frozen=True, slots=True)
class ModelAudio:
    """A server message that is nothing but model audio (its inline data parts, joined).

    The SDK's ``LiveServerMessage`` for it would carry the same bytes and nothing else; building
    even an unvalidated pydantic tree for it costs more than the rest of reading it.
    """

    pcm: bytes


ServerMessage = ModelAudio | types.LiveServerMessage


def server_message(raw: bytes | str) -> ServerMessage | None:
    """One server message: ModelAudio, or what ``AsyncSession.receive()`` yields (or raises) for it,
    except that a message with no field the SDK knows is None (to be ignored), not a TypeError,
    and an ``error`` body raises an APIError with the error's own code and message."""
    if raw:
        with contextlib.suppress(orjson.JSONDecodeError):
            audio = model_audio(orjson.loads(raw))
            if audio is not None:
                return audio
    # Anything else is parsed again as the SDK parses it: the stdlib's json keeps integers past
    # 64 bits and NaN, which orjson turns into floats or refuses. Small messages, seldom.
    try:
        response: Any = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        raise ValueError(f"Failed to parse response: {raw!r}") from None
    return _through_the_sdk(response)


def model_audio(response: Any) -> ModelAudio | None:
    """The parsed message as ModelAudio if it is nothing but inline data; None otherwise."""
    if not isinstance(response, dict) or len(response) != 1:
        return None
    content = response.get("serverContent")
    if not isinstance(content, dict) or len(content) != 1:
        return None
    turn = content.get("modelTurn")
    if not isinstance(turn, dict) or not turn.keys() <= {"parts", "role"}:
        return None
    parts = turn.get("parts")
    if not isinstance(parts, list) or not parts or not isinstance(turn.get("role", ""), str):
        return None
    chunks = []
    for part in parts:
        inline = part.get("inlineData") if isinstance(part, dict) and len(part) == 1 else None
        if not isinstance(inline, dict) or inline.keys() != {"data", "mimeType"}:
            return None
        data = inline["data"]
        if not isinstance(data, str) or not isinstance(inline["mimeType"], str):
            return None
        pcm = _canonical_base64(data)
        if pcm is None:
            return None
        chunks.append(pcm)
    return ModelAudio(chunks[0] if len(chunks) == 1 else b"".join(chunks))


def _canonical_base64(data: str) -> bytes | None:
    """The bytes of padded, canonical base64 in either alphabet; None for anything else.

    The SDK's models accept a little more and refuse some of it (unpadded, extra padding,
    non-zero trailing bits, mixed alphabets): whatever is not canonical is left to them.
    """
    if "-" in data or "_" in data:  # the URL-safe alphabet, which the SDK's models accept too
        if "+" in data or "/" in data:
            return None
        data = data.translate(_URLSAFE_TO_STANDARD)
    try:
        pcm = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if binascii.b2a_base64(pcm, newline=False) != data.encode("ascii"):
        return None
    return pcm


def _through_the_sdk(response: Any) -> types.LiveServerMessage | None:
    """The SDK's own conversion (``AsyncSession._receive``) of a parsed message; None for one that
    converts to nothing and is no error (a field newer than the SDK)."""
    converted = _live_converters._LiveServerMessage_from_mldev(response)
    if not converted and response:
        code = response.get("code")
        if isinstance(code, int):  # as the SDK raises it
            errors.APIError.raise_error(code, response, None)
        error = response.get("error")
        if error is not None:
            # The SDK passes None on as a status code and fails comparing it (TypeError): the
            # error's own code and message, as an HTTP error body carries them.
            body = error if isinstance(error, dict) else {"message": str(error)}
            error_code = body.get("code")
            raise errors.APIError(error_code if isinstance(error_code, int) else 0, {"error": body}, None)
        return None
    return types.LiveServerMessage._from_response(response=converted, kwargs=_NO_KWARGS)


class LiveWire:
    """A session's caller-audio sends and server messages; direct on the SDK's socket where it can be.

    Anything that is not the SDK's Gemini API session (a Vertex AI session, whose messages differ
    in shape, or a test's fake session) goes through the SDK's public methods instead.
    """

    def __init__(self, session: Any) -> None:
        self._session = session
        self.ignored = 0
        """Server messages read directly with no field the SDK knows (and no error), skipped."""
        direct = isinstance(session, live.AsyncSession) and not session._api_client.vertexai
        self._ws: Any = getattr(session, "_ws", None) if direct else None

    @property
    def direct(self) -> bool:
        return self._ws is not None

    async def send_audio(self, pcm: bytes) -> None:
        if self._ws is not None:
            await self._ws.send(caller_audio_message(pcm))
        else:
            # model_construct: the SDK validates its own parameters around the Blob anyway
            blob = types.Blob.model_construct(data=pcm, mime_type=_AUDIO_MIME)
            await self._session.send_realtime_input(audio=blob)

    def messages(self) -> AsyncIterator[ServerMessage]:
        """Every server message, across turns, until the connection fails (the SDK's errors).

        Through the SDK's methods, model audio comes as the SDK's message; directly, as ModelAudio.
        """
        return self._read_socket(self._ws) if self._ws is not None else self._through_receive()

    async def _through_receive(self) -> AsyncIterator[ServerMessage]:
        while True:  # the SDK's receive() ends at each turnComplete
            async for message in self._session.receive():
                yield message

    async def _read_socket(self, ws: Any) -> AsyncIterator[ServerMessage]:
        while True:
            try:
                raw = await ws.recv(decode=False)
            except ConnectionClosed as closed:  # reported as AsyncSession._receive reports it
                if closed.rcvd is not None:
                    code, reason = closed.rcvd.code, closed.rcvd.reason
                else:
                    code, reason = 1006, CLOSE_CODE_EXPLANATIONS.get(1006, "Abnormal closure.")
                errors.APIError.raise_error(code, reason, None)
                raise  # raise_error always raises; this keeps the checker sure of it
            message = server_message(raw)
            if message is not None:
                yield message
                continue
            self.ignored += 1
            level = logging.WARNING if self.ignored == 1 else logging.DEBUG
            log.log(level, "ignored a Live server message with no field we know (%d so far)", self.ignored)
