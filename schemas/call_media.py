"""Call records from the media plane: the stream, caller and agent speech, DTMF, transcripts."""

from dataclasses import dataclass, field
from datetime import datetime

from schemas.envelope import CallEnvelope, doc

AVRO_NAMESPACE = "voice.calls.v1"

STOP_REASONS = (
    "twilio_stop",
    "socket_closed",
    "edge_shutdown",
    "error",
    "hangup",
    "transferred",
    "transfer_failed",
    "no_agent",
)
SPEAKERS = ("caller", "agent")
INTERRUPT_SOURCES = ("edge_vad", "model")
_STREAM_MS = "Milliseconds since the media stream started."


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaStreamStarted(CallEnvelope):
    """The edge accepted Twilio's media stream and announces its audio bridge for the call."""

    stream_sid: str = field(metadata=doc("Twilio media stream SID."))
    twilio_call_sid: str
    edge_id: str = field(metadata=doc("Edge node holding the Twilio socket."))
    bridge_url: str = field(metadata=doc("WebSocket URL of the edge's audio bridge."))
    bridge_token: str = field(metadata=doc("Per-call secret the worker presents to the bridge."))
    token_expires_at: datetime = field(metadata=doc("After this the bridge refuses the token."))
    media_format: str = field(default="audio/x-mulaw", metadata=doc("Twilio media encoding."))
    sample_rate: int = field(default=8000, metadata=doc("Caller audio sample rate in Hz."))
    channels: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaStreamStopped(CallEnvelope):
    """The media stream ended; counters tell how healthy the audio was."""

    stream_sid: str
    reason: str = field(metadata=doc("One of: " + ", ".join(STOP_REASONS) + "."))
    frames_received: int
    frames_gaps: int = field(metadata=doc("Sequence gaps seen in Twilio's media frames."))
    frames_dropped: int = field(metadata=doc("Frames dropped by bounded queues."))


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerSpeechStarted(CallEnvelope):
    """Edge voice-activity detection heard the caller start speaking."""

    stream_ms: int = field(metadata=doc(_STREAM_MS))


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerSpeechStopped(CallEnvelope):
    """Edge voice-activity detection heard the caller stop speaking."""

    stream_ms: int = field(metadata=doc(_STREAM_MS))
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived(CallEnvelope):
    """The caller pressed a key."""

    digit: str = field(metadata=doc("0-9, *, # or A-D."))
    stream_ms: int = field(metadata=doc(_STREAM_MS))


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackMarkReached(CallEnvelope):
    """Twilio reported that playback reached a mark we sent."""

    mark_name: str
    stream_ms: int = field(metadata=doc(_STREAM_MS))


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptSegment(CallEnvelope):
    """A piece of transcript of either side; partial segments are superseded by final ones."""

    speaker: str = field(metadata=doc("One of: " + ", ".join(SPEAKERS) + "."))
    text: str
    final: bool = field(metadata=doc("False while the segment may still change."))
    start_ms: int = field(metadata=doc(_STREAM_MS))
    end_ms: int | None = None
    segment_index: int = field(metadata=doc("Position of the segment within the call."))


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSpeechStarted(CallEnvelope):
    """The agent began playing an utterance to the caller."""

    utterance_id: str
    stream_ms: int = field(metadata=doc(_STREAM_MS))


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSpeechFinished(CallEnvelope):
    """An agent utterance played to its end."""

    utterance_id: str
    played_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInterrupted(CallEnvelope):
    """The caller barged in; the rest of the agent's utterance was discarded."""

    utterance_id: str
    played_ms: int = field(metadata=doc("How much of the utterance the caller heard."))
    total_ms: int = field(metadata=doc("Length of the utterance generated so far."))
    source: str = field(metadata=doc("One of: " + ", ".join(INTERRUPT_SOURCES) + "."))


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingAvailable(CallEnvelope):
    """The edge stored the call recording; audio itself never travels on Kafka."""

    uri: str
    duration_ms: int
    channels: int = field(metadata=doc("2 = caller left, agent right."))
    sample_rate: int
    format: str = field(metadata=doc("Container/codec, e.g. wav."))
