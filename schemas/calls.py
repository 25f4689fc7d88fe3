"""Call lifecycle records, and the closed unions of call inputs and call events.

Media-plane records live in ``call_media``, session-worker records in ``call_session``; all
share the ``voice.calls.v1`` namespace. Enum-like fields are plain strings (Avro enums are
hard to evolve); the allowed values are the tuples below and are repeated in field docs.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from schemas.call_media import (
    AgentInterrupted,
    AgentSpeechFinished,
    AgentSpeechStarted,
    CallerSpeechStarted,
    CallerSpeechStopped,
    DtmfReceived,
    MediaStreamStarted,
    MediaStreamStopped,
    PlaybackMarkReached,
    RecordingAvailable,
    TranscriptSegment,
)
from schemas.call_session import (
    GeminiSessionClosed,
    GeminiSessionOpened,
    GeminiSessionResumed,
    ResumptionHandleUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallRequested,
    UsageReported,
)
from schemas.envelope import CallEnvelope, doc
from schemas.ids import AgentId

AVRO_NAMESPACE = "voice.calls.v1"

DIRECTIONS = ("inbound", "outbound")
REQUESTERS = ("caller", "agent", "operator", "system")
END_REASONS = (
    "completed",
    "caller_hung_up",
    "agent_hung_up",
    "transferred",
    "max_duration",
    "silence_timeout",
    "voicemail",
    "no_answer",
    "busy",
    "canceled",
    "failed",
)
TELEPHONY_STATUSES = (
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "no-answer",
    "canceled",
    "failed",
)


def _one_of(values: tuple[str, ...]) -> str:
    return "One of: " + ", ".join(values) + "."


@dataclass(frozen=True, slots=True, kw_only=True)
class CallReceived(CallEnvelope):
    """A call exists: an inbound call reached the edge, or the dialer placed an outbound one."""

    direction: str = field(metadata=doc(_one_of(DIRECTIONS)))
    from_number: str = field(metadata=doc("E.164."))
    to_number: str = field(metadata=doc("E.164."))
    agent_id: AgentId
    agent_version: int = field(metadata=doc("Agent version the call runs with, fixed at start."))
    twilio_call_sid: str | None = None
    variables: dict[str, str] = field(
        default_factory=dict, metadata=doc("Per-call variables for the prompt template.")
    )
    max_duration_s: int | None = field(
        default=None,
        metadata=doc("The pinned version's call limit, recorded so every replay enforces the same."),
    )
    silence_timeout_s: int | None = field(
        default=None, metadata=doc("The pinned version's silence limit; 0 or null switches it off.")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TelephonyStatusChanged(CallEnvelope):
    """Twilio reported a call status change (status callback)."""

    twilio_call_sid: str
    status: str = field(metadata=doc(_one_of(TELEPHONY_STATUSES)))
    answered_by: str | None = field(default=None, metadata=doc("Answering machine detection."))
    duration_s: int | None = None
    sip_response_code: int | None = None
    sequence_number: int | None = field(
        default=None, metadata=doc("Twilio's SequenceNumber; callbacks can arrive out of order.")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferRequested(CallEnvelope):
    """The agent asked to transfer the caller."""

    target: str = field(metadata=doc("E.164 number or SIP URI."))
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HangUpRequested(CallEnvelope):
    """Someone asked to hang up (the model's end-call tool, the caller via DTMF, ...)."""

    requested_by: str = field(metadata=doc(_one_of(REQUESTERS)))
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicemailRequested(CallEnvelope):
    """An answering machine took the call and the agent's policy is to leave a message.

    The session worker owning the call has the agent say ``message`` after the beep, waits for
    it to play, then hangs up with reason ``voicemail``. Published by the dialer.
    """

    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndCall(CallEnvelope):
    """Command: end the call (from the API or an operator); may be rejected."""

    requested_by: str = field(metadata=doc(_one_of(REQUESTERS)))
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockTicked(CallEnvelope):
    """Time passed for this call; the state machine takes no clock, so timers fire on this."""

    now: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(CallEnvelope):
    """The call is over. The last event of a call, together with CallFailed."""

    reason: str = field(metadata=doc(_one_of(END_REASONS)))
    ended_by: str | None = field(default=None, metadata=doc(_one_of(REQUESTERS)))


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFailed(CallEnvelope):
    """The call could not be carried out."""

    reason: str
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRejected(CallEnvelope):
    """A command on the call was refused; the rejection is part of the log."""

    command_type: str = field(metadata=doc("Avro full name of the rejected command."))
    reason: str
    rejected_event_id: str | None = None


CallFact: TypeAlias = (
    CallReceived
    | MediaStreamStarted
    | MediaStreamStopped
    | CallerSpeechStarted
    | CallerSpeechStopped
    | DtmfReceived
    | PlaybackMarkReached
    | TranscriptSegment
    | AgentSpeechStarted
    | AgentSpeechFinished
    | AgentInterrupted
    | ToolCallRequested
    | ToolCallCompleted
    | ToolCallFailed
    | TransferRequested
    | HangUpRequested
    | TelephonyStatusChanged
    | GeminiSessionOpened
    | GeminiSessionResumed
    | GeminiSessionClosed
    | ResumptionHandleUpdated
    | UsageReported
    | RecordingAvailable
    | VoicemailRequested
)
"""Facts: reported by edges, Twilio, workers; never rejected. Inputs and, once applied, events."""

CallCommand: TypeAlias = EndCall | ClockTicked
CallOutcome: TypeAlias = CallEnded | CallFailed | CommandRejected

CallInput: TypeAlias = CallFact | CallCommand
CallEvent: TypeAlias = CallFact | CallOutcome

# Every call record is importable from here, wherever it is defined.
__all__ = [
    "DIRECTIONS",
    "END_REASONS",
    "REQUESTERS",
    "TELEPHONY_STATUSES",
    "AgentInterrupted",
    "AgentSpeechFinished",
    "AgentSpeechStarted",
    "CallCommand",
    "CallEnded",
    "CallEvent",
    "CallFact",
    "CallFailed",
    "CallInput",
    "CallOutcome",
    "CallReceived",
    "CallerSpeechStarted",
    "CallerSpeechStopped",
    "ClockTicked",
    "CommandRejected",
    "DtmfReceived",
    "EndCall",
    "GeminiSessionClosed",
    "GeminiSessionOpened",
    "GeminiSessionResumed",
    "HangUpRequested",
    "MediaStreamStarted",
    "MediaStreamStopped",
    "PlaybackMarkReached",
    "RecordingAvailable",
    "ResumptionHandleUpdated",
    "TelephonyStatusChanged",
    "ToolCallCompleted",
    "ToolCallFailed",
    "ToolCallRequested",
    "TranscriptSegment",
    "TransferRequested",
    "UsageReported",
    "VoicemailRequested",
]
