"""Twilio Media Streams frames: parse what Twilio sends into typed values, build what we send.

Pure translation: no I/O, no clock, and ``parse`` never raises; bad input comes back as a
``FrameError`` whose ``kind`` is a stable label the shell counts.
"""

from __future__ import annotations

import binascii
import functools
import json
from base64 import b64decode
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson

_fast_loads = orjson.loads
"""~3x faster than ``json.loads`` on a media frame (50 a second per call)."""

DEFAULT_MAX_FRAME_CHARS = 8192
"""A 20 ms media frame is ~330 characters; anything this large is not a Twilio frame."""

MAX_TIMESTAMP_MS = 2**53
"""Far beyond any call, yet far from the event log's 64-bit ``long``: the stream times carried by
the speech, mark and DTMF facts stay encodable whatever the caller's ``timestamp`` claims."""

SUPPORTED_FORMAT = ("audio/x-mulaw", 8000, 1)
"""The only media format Twilio streams (encoding, sample rate, channels) and we can decode."""

ERROR_KINDS = (
    "binary",
    "oversized",
    "not_json",
    "malformed",
    "unknown_event",
    "bad_base64",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """Always Twilio's first frame."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """The stream began; custom parameters come from the TwiML ``<Parameter>``s."""

    sequence_number: int | None
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...] = ()
    custom_parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """One chunk of audio (μ-law bytes, already base64-decoded)."""

    sequence_number: int | None
    stream_sid: str
    track: str
    chunk: int | None
    timestamp_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """The echo of a mark we sent: playback reached it (or was cleared)."""

    sequence_number: int | None
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtmf:
    """A key press."""

    sequence_number: int | None
    stream_sid: str
    digit: str
    track: str = "inbound_track"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """The stream ended (the call hung up or the TwiML moved on)."""

    sequence_number: int | None
    stream_sid: str
    call_sid: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameError:
    """A frame we cannot use; ``kind`` is one of ``ERROR_KINDS``."""

    kind: str
    detail: str


TwilioFrame: TypeAlias = Connected | Start | Media | Mark | Dtmf | Stop
ParseResult: TypeAlias = TwilioFrame | FrameError


def parse(frame: str | bytes, *, max_chars: int = DEFAULT_MAX_FRAME_CHARS) -> ParseResult:
    """Parse one WebSocket frame from Twilio; never raises."""
    if not isinstance(frame, str):
        return FrameError(kind="binary", detail=f"binary frame of {len(frame)} bytes")
    if len(frame) > max_chars:
        return FrameError(kind="oversized", detail=f"{len(frame)} chars > {max_chars}")
    try:
        body = _fast_loads(frame)
    except ValueError:
        # orjson is stricter at the edges (NaN, huge integers, lone surrogates): the stdlib
        # decides what a frame orjson refuses is, so bad input is labelled exactly as before.
        try:
            body = json.loads(frame)
        except (ValueError, RecursionError) as exc:
            return FrameError(kind="not_json", detail=str(exc)[:120])
        # Only here can a string hold a lone surrogate (orjson refuses them): valid JSON text,
        # but no Unicode, so any fact or id built from it would fail to encode mid-call.
        if not _is_utf8(body):
            return FrameError(kind="malformed", detail="a string is not valid Unicode (lone surrogate)")
    if not isinstance(body, dict):
        return FrameError(kind="malformed", detail="frame is not a JSON object")
    try:
        return _parse_event(body)
    # OverflowError: a number JSON can spell but int() cannot take (1e400 parses as infinity).
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        return FrameError(kind="malformed", detail=f"{type(exc).__name__}: {str(exc)[:100]}")


def _parse_event(body: dict[str, Any]) -> ParseResult:
    event = body.get("event")
    if event == "media":
        return _parse_media(body)
    if event == "mark":
        return Mark(
            sequence_number=_seq(body),
            stream_sid=_text(body, "streamSid"),
            name=_text(_obj(body, "mark"), "name"),
        )
    if event == "dtmf":
        dtmf = _obj(body, "dtmf")
        return Dtmf(
            sequence_number=_seq(body),
            stream_sid=_text(body, "streamSid"),
            digit=_text(dtmf, "digit"),
            track=str(dtmf.get("track", "inbound_track")),
        )
    if event == "start":
        return _parse_start(body)
    if event == "stop":
        stop = body.get("stop")
        call_sid = str(stop.get("callSid", "")) if isinstance(stop, dict) else ""
        return Stop(sequence_number=_seq(body), stream_sid=_text(body, "streamSid"), call_sid=call_sid)
    if event == "connected":
        return Connected(protocol=str(body.get("protocol", "")), version=str(body.get("version", "")))
    return FrameError(kind="unknown_event", detail=f"event {str(event)[:40]!r}")


def _parse_media(body: dict[str, Any]) -> ParseResult:
    media = _obj(body, "media")
    try:
        payload = b64decode(_text(media, "payload"), validate=True)
    except (binascii.Error, ValueError) as exc:
        return FrameError(kind="bad_base64", detail=str(exc)[:120])
    chunk = media.get("chunk")
    timestamp_ms = int(media.get("timestamp", 0))
    if not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
        raise ValueError(f"timestamp {str(timestamp_ms)[:24]} out of range")
    return Media(
        sequence_number=_seq(body),
        stream_sid=_text(body, "streamSid"),
        track=str(media.get("track", "inbound")),
        chunk=None if chunk is None else int(chunk),
        timestamp_ms=timestamp_ms,
        payload=payload,
    )


def _parse_start(body: dict[str, Any]) -> ParseResult:
    start = _obj(body, "start")
    params = start.get("customParameters") or {}
    if not isinstance(params, dict):
        raise TypeError("customParameters must be an object")
    media_format = start.get("mediaFormat") or {}
    if not isinstance(media_format, dict):
        raise TypeError("mediaFormat must be an object")
    tracks = start.get("tracks") or ()
    if not isinstance(tracks, list | tuple):
        raise TypeError("tracks must be a list")
    return Start(
        sequence_number=_seq(body),
        stream_sid=_text(start, "streamSid") if "streamSid" in start else _text(body, "streamSid"),
        call_sid=_text(start, "callSid"),
        account_sid=str(start.get("accountSid", "")),
        tracks=tuple(str(t) for t in tracks),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        encoding=str(media_format.get("encoding", "audio/x-mulaw")),
        sample_rate=int(media_format.get("sampleRate", 8000)),
        channels=int(media_format.get("channels", 1)),
    )


def supported_format(start: Start) -> bool:
    """Whether the stream's audio is μ-law at 8 kHz, mono: anything else would be decoded as noise."""
    return (start.encoding, start.sample_rate, start.channels) == SUPPORTED_FORMAT


def _is_utf8(body: dict[str, Any]) -> bool:
    """Every string in ``body`` (keys too) can be encoded as UTF-8."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _obj(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise TypeError(f"{key!r} must be an object")
    return value


def _text(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string")
    return value


def _seq(body: dict[str, Any]) -> int | None:
    value = body.get("sequenceNumber")
    return None if value is None else int(value)


# --- what we send to Twilio -----------------------------------------------------------------


def media_message(stream_sid: str, mulaw: bytes) -> str:
    """A ``media`` frame carrying raw μ-law/8000 bytes."""
    # binascii directly: base64.b64encode is a Python wrapper around it (50 frames/s per call).
    payload = binascii.b2a_base64(mulaw, newline=False).decode("ascii")
    return f'{_media_prefix(stream_sid)}{payload}"}}}}'


@functools.lru_cache(maxsize=4096)
def _media_prefix(stream_sid: str) -> str:
    """Everything before the payload (50 frames a second per call, one stream id each)."""
    return f'{{"event":"media","streamSid":{json.dumps(stream_sid)},"media":{{"payload":"'


def mark_message(stream_sid: str, name: str) -> str:
    """A ``mark`` frame; Twilio echoes it back when playback reaches it."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """A ``clear`` frame: Twilio drops its buffered audio and returns pending marks."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})
