"""TwiML the edge answers with: connect the call to our media stream, or refuse politely.

Pure functions over ``twilio.twiml.voice_response``. The dialer (in streams) must not import
edge, so it builds the same ``<Connect><Stream>`` document by pointing Twilio's ``url`` at
``/twilio/voice`` with the call's parameters in the query string (see docs/audio-bridge.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from twilio.twiml.voice_response import Connect, VoiceResponse

MEDIA_PATH = "/twilio/media"
STREAM_STATUS_PATH = "/twilio/stream-status"
BUSY_MESSAGE = "Sorry, all of our lines are busy right now. Please call again in a few minutes. Goodbye."
UNAVAILABLE_MESSAGE = (
    "Sorry, we cannot take your call right now because of a technical problem. "
    "Please call again in a few minutes. Goodbye."
)
UNKNOWN_NUMBER_MESSAGE = "Sorry, this number is not in service. Goodbye."


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamParameters:
    """What the media socket learns about the call from ``start.customParameters``."""

    call_id: str
    tenant_id: str
    agent_id: str
    agent_version: int
    direction: str
    record: bool = False

    def as_dict(self) -> dict[str, str]:
        return {
            "call_id": self.call_id,
            "tenant_id": self.tenant_id,
            "agent_id": self.agent_id,
            "agent_version": str(self.agent_version),
            "direction": self.direction,
            "record": "true" if self.record else "false",
        }


def media_stream_url(public_base_url: str) -> str:
    """The exact ``wss://`` URL Twilio connects to (and signs): scheme switched, path appended."""
    parts = urlsplit(public_base_url)
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + MEDIA_PATH, "", ""))


def connect_stream(public_base_url: str, params: StreamParameters) -> str:
    """``<Connect><Stream>`` to our media socket, carrying the call's parameters."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(
        url=media_stream_url(public_base_url),
        status_callback=public_base_url.rstrip("/") + STREAM_STATUS_PATH,
    )
    for name, value in params.as_dict().items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def refuse(message: str) -> str:
    """Say ``message`` and hang up: never a 500, never silence."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)
