"""Call records from the session workers: the Gemini Live session, tool calls and usage."""

from dataclasses import dataclass, field

from schemas.envelope import CallEnvelope, doc

AVRO_NAMESPACE = "voice.calls.v1"

SESSION_CLOSE_REASONS = ("go_away", "call_ended", "error", "worker_shutdown", "partition_revoked")


@dataclass(frozen=True, slots=True, kw_only=True)
class GeminiSessionOpened(CallEnvelope):
    """A worker opened a fresh Gemini Live session for the call."""

    session_id: str | None = None
    model: str
    worker_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GeminiSessionResumed(CallEnvelope):
    """A worker reconnected the call's Gemini session, using the last resumption handle."""

    resumption_handle: str
    worker_id: str
    fresh_session: bool = field(metadata=doc("True when resumption failed and context was lost."))


@dataclass(frozen=True, slots=True, kw_only=True)
class GeminiSessionClosed(CallEnvelope):
    """The call's Gemini session closed."""

    reason: str = field(metadata=doc("One of: " + ", ".join(SESSION_CLOSE_REASONS) + "."))
    resumption_handle: str | None = None
    close_code: int | None = field(default=None, metadata=doc("WebSocket close code, if any."))


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumptionHandleUpdated(CallEnvelope):
    """Gemini issued a new session resumption handle; a new owner resumes from the latest."""

    handle: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageReported(CallEnvelope):
    """Token usage reported by Gemini, cumulative for the session."""

    prompt_tokens: int
    response_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallRequested(CallEnvelope):
    """The model asked to run a tool."""

    tool_call_id: str
    name: str
    arguments_json: str = field(metadata=doc("Arguments as a JSON object text."))


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallCompleted(CallEnvelope):
    """A tool call returned a result to the model."""

    tool_call_id: str
    name: str
    result_json: str = field(metadata=doc("Result as JSON text."))
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallFailed(CallEnvelope):
    """A tool call failed; the model was told so."""

    tool_call_id: str
    name: str
    error: str
    duration_ms: int
