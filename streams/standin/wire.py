"""Live API wire format for the stand-in: parse client messages, build server messages (pure).

Facts from PROTOCOLS.md A3/A4: google-genai mixes camelCase and snake_case keys (top-level
`realtime_input`, nested `voice_config`...), so every key is normalised to camelCase first.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

_SNAKE = re.compile(r"_([a-z0-9])")

JsonObject = dict[str, Any]


def camel(key: str) -> str:
    """`realtime_input` -> `realtimeInput`; camelCase keys are returned unchanged."""
    return _SNAKE.sub(lambda m: m.group(1).upper(), key)


def normalise_keys(value: Any) -> Any:
    """Rename every dict key, at any depth, to camelCase (values are left alone)."""
    if isinstance(value, dict):
        return {camel(str(k)): normalise_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_keys(v) for v in value]
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """The parts of a `setup` message the stand-in acts on (`raw` keeps all of it, normalised)."""

    model: str
    system_instruction: str
    resumption_enabled: bool
    resume_handle: str | None
    auto_vad: bool
    interrupts: bool
    silence_ms: int | None
    raw: JsonObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Audio:
    pcm: bytes
    rate: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityStart:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityEnd:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStreamEnd:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class TextTurn:
    """Text from `realtimeInput.text` or a completed `clientContent` turn."""

    text: str
    complete: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResponse:
    responses: tuple[JsonObject, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignored:
    """Understood but irrelevant to the stand-in (video, media chunks, empty input)."""

    what: str


ClientMessage = (
    Setup | Audio | ActivityStart | ActivityEnd | AudioStreamEnd | TextTurn | ToolResponse | Ignored
)


class ClientMessageError(ValueError):
    """The client sent something the real service would reject (close 1007)."""


def parse_client_message(message: Any) -> list[ClientMessage]:
    """Turn one decoded JSON client message into what it asks for (one message, many fields)."""
    if not isinstance(message, dict) or len(message) == 0:
        raise ClientMessageError("a client message must be a non-empty JSON object")
    msg = normalise_keys(message)
    if "setup" in msg:
        return [parse_setup(msg["setup"])]
    if "realtimeInput" in msg:
        return _realtime(_object(msg["realtimeInput"], "realtimeInput"))
    if "clientContent" in msg:
        return [_client_content(_object(msg["clientContent"], "clientContent"))]
    if "toolResponse" in msg:
        body = _object(msg["toolResponse"], "toolResponse")
        responses = body.get("functionResponses") or []
        if not isinstance(responses, list) or not all(isinstance(r, dict) for r in responses):
            raise ClientMessageError("toolResponse.functionResponses must be a list of objects")
        return [ToolResponse(responses=tuple(responses))]
    raise ClientMessageError(f"unknown client message field(s): {sorted(msg)}")


def parse_setup(setup: Any) -> Setup:
    """Read the settings the stand-in honours from a (possibly mixed-case) setup body."""
    body = _object(normalise_keys(setup), "setup")
    resumption = body.get("sessionResumption")
    rt_config = body.get("realtimeInputConfig") or {}
    detection = rt_config.get("automaticActivityDetection") or {}
    silence = detection.get("silenceDurationMs")
    return Setup(
        model=str(body.get("model", "")),
        system_instruction=_content_text(body.get("systemInstruction")),
        resumption_enabled=isinstance(resumption, dict),
        resume_handle=(resumption or {}).get("handle") if isinstance(resumption, dict) else None,
        auto_vad=not bool(detection.get("disabled", False)),
        interrupts=rt_config.get("activityHandling") != "NO_INTERRUPTION",
        silence_ms=int(silence) if isinstance(silence, int | float) else None,
        raw=body,
    )


def _realtime(body: JsonObject) -> list[ClientMessage]:
    out: list[ClientMessage] = []
    for key in ("audio", "mediaChunks"):
        blobs = body.get(key)
        for blob in blobs if isinstance(blobs, list) else [blobs] if blobs is not None else []:
            out.append(_audio(_object(blob, key)))
    if "activityStart" in body:
        out.append(ActivityStart())
    if "activityEnd" in body:
        out.append(ActivityEnd())
    if body.get("audioStreamEnd"):
        out.append(AudioStreamEnd())
    if isinstance(body.get("text"), str):
        out.append(TextTurn(text=body["text"]))
    if "video" in body:
        out.append(Ignored(what="video"))
    return out or [Ignored(what="empty realtimeInput")]


def _audio(blob: JsonObject) -> ClientMessage:
    mime = str(blob.get("mimeType", ""))
    if not mime.startswith("audio/pcm"):
        return Ignored(what=f"media {mime or 'without mimeType'}")
    match = re.search(r"rate=(\d+)", mime)
    try:
        # google-genai sends URL-safe base64; proto JSON accepts both alphabets.
        data = str(blob.get("data", "")).replace("-", "+").replace("_", "/")
        pcm = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except binascii.Error as exc:
        raise ClientMessageError(f"audio data is not base64: {exc}") from exc
    if len(pcm) % 2:
        raise ClientMessageError("PCM16 audio must have an even number of bytes")
    return Audio(pcm=pcm, rate=int(match.group(1)) if match else 16000)


def _client_content(body: JsonObject) -> ClientMessage:
    turns = body.get("turns") or []
    texts = [_content_text(t) for t in (turns if isinstance(turns, list) else [turns])]
    return TextTurn(text=" ".join(t for t in texts if t), complete=bool(body.get("turnComplete", False)))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts") or []
    return "\n".join(str(p["text"]) for p in parts if isinstance(p, dict) and "text" in p)


def _object(value: Any, name: str) -> JsonObject:
    if not isinstance(value, dict):
        raise ClientMessageError(f"{name} must be a JSON object")
    return value


# --- server -> client -------------------------------------------------------------------------


def setup_complete(session_id: str) -> JsonObject:
    return {"setupComplete": {"sessionId": session_id}}


def input_transcription(text: str) -> JsonObject:
    return {"serverContent": {"inputTranscription": {"text": text}}}


def output_transcription(text: str) -> JsonObject:
    return {"serverContent": {"outputTranscription": {"text": text}}}


def audio_chunk(pcm: bytes, rate: int = 24000) -> JsonObject:
    data = base64.b64encode(pcm).decode("ascii")
    part = {"inlineData": {"mimeType": f"audio/pcm;rate={rate}", "data": data}}
    return {"serverContent": {"modelTurn": {"parts": [part]}}}


def generation_complete() -> JsonObject:
    return {"serverContent": {"generationComplete": True}}


def interrupted() -> JsonObject:
    return {"serverContent": {"interrupted": True}}


def turn_complete(prompt_tokens: int, response_tokens: int) -> JsonObject:
    usage = {
        "promptTokenCount": prompt_tokens,
        "responseTokenCount": response_tokens,
        "totalTokenCount": prompt_tokens + response_tokens,
    }
    return {"serverContent": {"turnComplete": True}, "usageMetadata": usage}


def tool_call(calls: list[tuple[str, str, JsonObject]]) -> JsonObject:
    return {"toolCall": {"functionCalls": [{"id": i, "name": n, "args": a} for i, n, a in calls]}}


def tool_call_cancellation(ids: list[str]) -> JsonObject:
    return {"toolCallCancellation": {"ids": ids}}


def go_away(time_left_s: float) -> JsonObject:
    return {"goAway": {"timeLeft": f"{max(0.0, time_left_s):g}s"}}


def resumption_update(handle: str) -> JsonObject:
    return {"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}
