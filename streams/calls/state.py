"""State of one call as folded from its events, and the limits its decider enforces."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from schemas.agents import AgentConfig
from schemas.ids import AgentId, CallId, TenantId


class CallStatus(StrEnum):
    """Where a call is in its life; ENDED and FAILED are terminal."""

    RECEIVED = "received"
    DIALING = "dialing"
    RINGING = "ringing"
    CONNECTED = "connected"
    IN_CONVERSATION = "in_conversation"
    TRANSFERRING = "transferring"
    ENDING = "ending"
    ENDED = "ended"
    FAILED = "failed"


SETTING_UP = frozenset({CallStatus.RECEIVED, CallStatus.DIALING, CallStatus.RINGING})
TALKING = frozenset({CallStatus.CONNECTED, CallStatus.IN_CONVERSATION})
SETTLING = frozenset({CallStatus.TRANSFERRING, CallStatus.ENDING})
TERMINAL = frozenset({CallStatus.ENDED, CallStatus.FAILED})


@dataclass(frozen=True, slots=True, kw_only=True)
class CallLimits:
    """Timer limits for one call; a value of 0 or less switches that timer off.

    The shell builds them from the call's pinned agent version. Agent versions are immutable,
    so re-processing an input after a crash sees the same limits and decides the same events.
    """

    max_duration_s: int
    silence_timeout_s: int
    setup_timeout_s: int = 90
    """Longest wait from CallReceived to an answer (or a media stream) before the call fails."""
    settle_timeout_s: int = 30
    """Longest wait for the edge or Twilio to confirm a requested hang-up or transfer."""

    @classmethod
    def from_config(cls, config: AgentConfig) -> "CallLimits":
        """The limits an agent version sets; the other timers keep their defaults."""
        return cls(max_duration_s=config.max_duration_s, silence_timeout_s=config.silence_timeout_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaStream:
    """The edge's media stream for the call: where a session worker connects its audio bridge."""

    stream_sid: str
    edge_id: str
    bridge_url: str
    bridge_token: str
    token_expires_at: datetime


TRANSCRIPT_TAIL_SEGMENTS = 12
"""How many of the call's latest transcript segments its state keeps (``CallState.transcript_tail``)."""
TRANSCRIPT_TAIL_CHARS = 240
"""How much of each segment's text ``CallState.transcript_tail`` keeps."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallState:
    """Everything the decider and the session workers need to know about one call."""

    call_id: CallId
    tenant_id: TenantId
    seq: int
    """Seq of the last event applied."""
    status: CallStatus
    direction: str
    agent_id: AgentId
    agent_version: int
    twilio_call_sid: str | None = None
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    settling_since: datetime | None = None
    """When a hang-up or transfer was requested; the settle timer counts from here."""
    end_reason: str | None = None
    """Pending while ENDING (one of END_REASONS), final once ENDED; CallFailed's reason if FAILED."""
    ended_by: str | None = None
    transfer_target: str | None = None
    stream: MediaStream | None = None
    session_open: bool = False
    resumption_handle: str | None = None
    agent_heard: bool = False
    """The caller has heard the agent: a playback mark came back from Twilio, or the caller
    talked over an utterance. A session that takes the call over before this greets again:
    a pre-warmed session's greeting, made on another worker, may never have been played."""
    last_activity_at: datetime
    """Last sign of life on the line; the silence timer counts from here."""
    silence_checked_in: bool = False
    caller_speaking: bool = False
    agent_utterance_id: str | None = None
    last_interrupted_utterance_id: str | None = None
    tools_in_flight: tuple[str, ...] = ()
    voicemail_message: str | None = None
    """Set once an answering machine took the call and the agent is to leave this message."""
    interruptions: int = 0
    tool_calls: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    """Per-call values for the agent's prompt template (``CallReceived.variables``)."""
    agent_utterances: int = 0
    """Utterances the agent has started (``AgentSpeechStarted``): a session that takes the call
    over numbers its own on from here, so its ids are not its predecessor's."""
    transcript_segments: int = 0
    """Highest ``TranscriptSegment.segment_index`` so far: a session that takes the call over
    numbers its segments on from here, so they do not overwrite the earlier ones."""
    transcript_tail: tuple[str, ...] = ()
    """The call's latest final transcript segments as "speaker: text" (at most
    TRANSCRIPT_TAIL_SEGMENTS, each cut to TRANSCRIPT_TAIL_CHARS, so the table record stays
    small): a session that takes the call over and cannot resume its Live session is primed
    with them."""

    @property
    def live(self) -> bool:
        """False once the call has ended or failed."""
        return self.status not in TERMINAL

    @property
    def ended_since(self) -> datetime | None:
        """When the call ended or failed; None while it is live."""
        if self.live:
            return None
        return self.ended_at or self.started_at  # every terminal event sets ended_at; defensive
