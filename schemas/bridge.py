"""The audio-bridge wire format between an edge node and a session worker (pure, no I/O).

Audio travels in binary WebSocket frames: a 9-byte header (``!BII``: kind, sequence number,
stream milliseconds) followed by little-endian PCM16 samples. Directives and notices travel in
small JSON text frames ``{"type": ..., ...}``. ``docs/audio-bridge.md`` is the prose version.
Decoding never raises: bad input comes back as a ``BridgeError`` value.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

PROTOCOL_VERSION: Final = 1
PATH_PREFIX: Final = "/bridge/"
"""Workers connect to ``{bridge_url}`` = ``ws://host:port/bridge/{call_id}``."""
TOKEN_HEADER: Final = "X-Bridge-Token"
"""The per-call token; ``?token=`` in the query string is accepted as well."""
WORKER_HEADER: Final = "X-Bridge-Worker"
"""The connecting worker's id (optional): a worker replaced on a call is refused (4409) while
another worker serves it, so a stalled one coming back cannot take the call from its successor."""

HEADER: Final = struct.Struct("!BII")
HEADER_LEN: Final = HEADER.size

CALLER_AUDIO: Final = 0x01
"""Edge → worker: caller audio, PCM16 mono 16 kHz, 20 ms (640 bytes) per frame."""
AGENT_AUDIO: Final = 0x02
"""Worker → edge: agent audio to play, PCM16 mono 24 kHz, any length (even byte count)."""

CALLER_RATE: Final = 16000
AGENT_RATE: Final = 24000
MAX_AUDIO_BYTES: Final = 24000 * 2 * 2
"""Largest agent audio payload accepted in one frame (2 s at 24 kHz)."""
MAX_TEXT_CHARS: Final = 4096

# Close codes (4000-4999 are private-use in RFC 6455).
CLOSE_BAD_TOKEN: Final = 4401
"""The token is missing, wrong, or belongs to another call."""
CLOSE_TOKEN_EXPIRED: Final = 4403
"""The token's expiry has passed."""
CLOSE_CALL_GONE: Final = 4404
"""No live call with that id on this edge (ended, or never here): the token is spent."""
CLOSE_REPLACED: Final = 4409
"""A newer worker connection for the same call took over (failover)."""
CLOSE_CALL_ENDED: Final = 4410
"""The call's media stream ended; no more audio will flow."""
CLOSE_EDGE_SHUTDOWN: Final = 4503
"""The edge node is shutting down."""

# --- edge -> worker -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerAudio:
    """A 20 ms frame of caller audio; ``seq`` counts bridge audio frames from 0 per call."""

    seq: int
    stream_ms: int
    pcm: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """First frame after a worker connects: what call this is and how much audio was buffered."""

    call_id: str
    stream_sid: str
    caller_rate: int = CALLER_RATE
    agent_rate: int = AGENT_RATE
    buffered_ms: int = 0
    dropped_ms: int = 0
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class BargeIn:
    """The edge heard the caller over agent audio and already cleared playback."""

    utterance_id: str
    played_ms: int
    stream_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkReached:
    """Twilio reported that playback reached a mark the worker asked for."""

    name: str
    stream_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtmf:
    """The caller pressed a key."""

    digit: str
    stream_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStopped:
    """The Twilio media stream ended; the edge closes the bridge right after this frame."""

    reason: str


# --- worker -> edge -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentAudio:
    """Agent audio to append to the playback queue."""

    seq: int
    pcm: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BeginUtterance:
    """Following agent audio belongs to utterance ``utterance_id`` (for played_ms accounting)."""

    utterance_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayMark:
    """Ask Twilio to report when everything queued before this point has played."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearPlayback:
    """Drop every queued agent frame and flush Twilio's buffer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HangUp:
    """End the media stream and the call."""

    reason: str = "agent_hung_up"


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """Move the caller to ``target`` (Twilio ``<Dial>``); the media stream ends with it."""

    target: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeError:
    """A frame that is not valid bridge protocol; ``kind`` is a short stable label."""

    kind: str
    detail: str


EdgeToWorker: TypeAlias = CallerAudio | Hello | BargeIn | MarkReached | Dtmf | StreamStopped
WorkerToEdge: TypeAlias = AgentAudio | BeginUtterance | PlayMark | ClearPlayback | HangUp | Transfer
BridgeMessage: TypeAlias = EdgeToWorker | WorkerToEdge

_TEXT_TYPES: dict[str, tuple[type[Any], tuple[tuple[str, type], ...]]] = {
    "hello": (
        Hello,
        (
            ("call_id", str),
            ("stream_sid", str),
            ("caller_rate", int),
            ("agent_rate", int),
            ("buffered_ms", int),
            ("dropped_ms", int),
            ("version", int),
        ),
    ),
    "barge_in": (BargeIn, (("utterance_id", str), ("played_ms", int), ("stream_ms", int))),
    "mark_reached": (MarkReached, (("name", str), ("stream_ms", int))),
    "dtmf": (Dtmf, (("digit", str), ("stream_ms", int))),
    "stream_stopped": (StreamStopped, (("reason", str),)),
    "utterance": (BeginUtterance, (("utterance_id", str),)),
    "mark": (PlayMark, (("name", str),)),
    "clear": (ClearPlayback, ()),
    "hangup": (HangUp, (("reason", str),)),
    "transfer": (Transfer, (("target", str),)),
}
_TYPE_OF: dict[type[Any], str] = {cls: name for name, (cls, _) in _TEXT_TYPES.items()}


def encode_caller_audio(seq: int, stream_ms: int, pcm: bytes) -> bytes:
    """The binary frame for 20 ms of caller audio."""
    return HEADER.pack(CALLER_AUDIO, seq & 0xFFFFFFFF, stream_ms & 0xFFFFFFFF) + pcm


def encode_agent_audio(seq: int, pcm: bytes) -> bytes:
    """The binary frame for a chunk of agent audio (24 kHz PCM16)."""
    return HEADER.pack(AGENT_AUDIO, seq & 0xFFFFFFFF, 0) + pcm


def encode_text(message: BridgeMessage) -> str:
    """The JSON text frame of a directive or notice (not for audio)."""
    name = _TYPE_OF.get(type(message))
    if name is None:
        raise TypeError(f"{type(message).__name__} is not a text bridge message")
    fields = _TEXT_TYPES[name][1]
    body: dict[str, Any] = {"type": name}
    for key, _ in fields:
        body[key] = getattr(message, key)
    return json.dumps(body, separators=(",", ":"))


def encode(message: BridgeMessage) -> bytes | str:
    """The frame of any bridge message: bytes for audio, text otherwise."""
    if isinstance(message, CallerAudio):
        return encode_caller_audio(message.seq, message.stream_ms, message.pcm)
    if isinstance(message, AgentAudio):
        return encode_agent_audio(message.seq, message.pcm)
    return encode_text(message)


def decode(frame: bytes | str) -> BridgeMessage | BridgeError:
    """Parse one WebSocket frame; never raises."""
    if isinstance(frame, str):
        return _decode_text(frame)
    return _decode_binary(frame)


def _decode_binary(frame: bytes) -> CallerAudio | AgentAudio | BridgeError:
    if len(frame) < HEADER_LEN:
        return BridgeError(kind="short_frame", detail=f"{len(frame)} bytes < {HEADER_LEN}-byte header")
    kind, seq, stream_ms = HEADER.unpack_from(frame)
    pcm = bytes(frame[HEADER_LEN:])
    if len(pcm) % 2:
        return BridgeError(kind="odd_pcm", detail=f"PCM16 payload of {len(pcm)} bytes")
    if len(pcm) > MAX_AUDIO_BYTES:
        return BridgeError(kind="oversized", detail=f"{len(pcm)} audio bytes > {MAX_AUDIO_BYTES}")
    if kind == CALLER_AUDIO:
        return CallerAudio(seq=seq, stream_ms=stream_ms, pcm=pcm)
    if kind == AGENT_AUDIO:
        return AgentAudio(seq=seq, pcm=pcm)
    return BridgeError(kind="unknown_kind", detail=f"binary frame kind 0x{kind:02x}")


def _decode_text(frame: str) -> BridgeMessage | BridgeError:
    if len(frame) > MAX_TEXT_CHARS:
        return BridgeError(kind="oversized", detail=f"{len(frame)} chars > {MAX_TEXT_CHARS}")
    try:
        body = json.loads(frame)
    except RecursionError:  # "[" * 2000 fits the size limit and exhausts the parser's stack
        return BridgeError(kind="not_json", detail="nested too deeply")
    except ValueError as exc:
        return BridgeError(kind="not_json", detail=str(exc)[:120])
    if not isinstance(body, dict):
        return BridgeError(kind="malformed", detail="a text frame must be a JSON object")
    spec = _TEXT_TYPES.get(str(body.get("type")))
    if spec is None:
        return BridgeError(kind="unknown_type", detail=f"type {str(body.get('type'))[:40]!r}")
    cls, fields = spec
    values: dict[str, Any] = {}
    for key, kind in fields:
        if key not in body:
            continue  # the dataclass default applies, or construction below reports it
        value = body[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            return BridgeError(kind="malformed", detail=f"{key!r} must be {kind.__name__}")
        if isinstance(value, str) and not _is_utf8(value):
            # A lone surrogate ("\ud800") decodes from JSON but cannot be written to any event.
            return BridgeError(kind="malformed", detail=f"{key!r} is not valid Unicode text")
        values[key] = value
    try:
        message: BridgeMessage = cls(**values)
    except TypeError as exc:
        return BridgeError(kind="malformed", detail=str(exc)[:120])
    return message


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
