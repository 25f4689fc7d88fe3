"""Builders of call inputs and a given/when/then harness for the call decider's tests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from schemas.avro_schema import full_name
from schemas.calls import (
    AgentInterrupted,
    AgentSpeechFinished,
    AgentSpeechStarted,
    CallEnded,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallEvent,
    CallFailed,
    CallInput,
    CallReceived,
    ClockTicked,
    CommandRejected,
    DtmfReceived,
    EndCall,
    GeminiSessionClosed,
    GeminiSessionOpened,
    GeminiSessionResumed,
    HangUpRequested,
    MediaStreamStarted,
    MediaStreamStopped,
    PlaybackMarkReached,
    RecordingAvailable,
    ResumptionHandleUpdated,
    TelephonyStatusChanged,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallRequested,
    TranscriptSegment,
    TransferRequested,
    UsageReported,
    VoicemailRequested,
)
from schemas.codec import Codec
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, EventId, TenantId
from streams.calls import shell
from streams.calls.machine import decide, fold
from streams.calls.state import CallLimits, CallState
from streams.calls.timers import SILENCE_CHECK_IN_TOOL

R = TypeVar("R")

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CALL = CallId("call-1")
TENANT = TenantId("tenant-1")
OTHER_TENANT = TenantId("tenant-2")
SID = "MZ-1"
SHELL_CODEC = Codec.single_object()
LIMITS = CallLimits(max_duration_s=600, silence_timeout_s=20, setup_timeout_s=90, settle_timeout_s=30)


def at(seconds: float) -> datetime:
    """The instant `seconds` after the scenario's start."""
    return T0 + timedelta(seconds=seconds)


def make(cls: type[R], t: float = 0.0, tenant: TenantId = TENANT, **fields: Any) -> R:
    """An input record as a producer sends it: its own seq (0) and id, the input's correlation."""
    return cls(
        tenant_id=tenant,
        call_id=CALL,
        seq=0,
        event_id=EventId(f"input-{cls.__name__}-{t}"),  # type: ignore[call-arg]
        occurred_at=at(t),
        correlation_id=CorrelationId(f"corr-{cls.__name__}-{t}"),
        **fields,
    )


# Facts, one builder each.
def received(t: float = 0, direction: str = "inbound", **kw: Any) -> CallReceived:
    return make(
        CallReceived, t, direction=direction, from_number="+15550001", to_number="+15550002",
        agent_id=AgentId("agent-1"), agent_version=3, **kw,
    )  # fmt: skip


def stream_started(t: float = 1, sid: str = SID) -> MediaStreamStarted:
    return make(
        MediaStreamStarted, t, stream_sid=sid, twilio_call_sid="CA-1", edge_id="edge-a",
        bridge_url="ws://edge-a/bridge", bridge_token="tok-1", token_expires_at=at(3600),
    )  # fmt: skip


def stream_stopped(t: float, reason: str = "twilio_stop", sid: str = SID) -> MediaStreamStopped:
    return make(
        MediaStreamStopped, t, stream_sid=sid, reason=reason, frames_received=10, frames_gaps=0,
        frames_dropped=0,
    )  # fmt: skip


def caller_started(t: float) -> CallerSpeechStarted:
    return make(CallerSpeechStarted, t, stream_ms=int(t * 1000))


def caller_stopped(t: float) -> CallerSpeechStopped:
    return make(CallerSpeechStopped, t, stream_ms=int(t * 1000), duration_ms=500)


def dtmf(t: float, digit: str = "5") -> DtmfReceived:
    return make(DtmfReceived, t, digit=digit, stream_ms=int(t * 1000))


def mark(t: float) -> PlaybackMarkReached:
    return make(PlaybackMarkReached, t, mark_name="m1", stream_ms=int(t * 1000))


def transcript(t: float, speaker: str = "caller", index: int = 0) -> TranscriptSegment:
    return make(
        TranscriptSegment, t, speaker=speaker, text="hello", final=True, start_ms=0,
        segment_index=index,
    )  # fmt: skip


def agent_started(t: float, utterance: str = "u1") -> AgentSpeechStarted:
    return make(AgentSpeechStarted, t, utterance_id=utterance, stream_ms=int(t * 1000))


def agent_finished(t: float, utterance: str = "u1") -> AgentSpeechFinished:
    return make(AgentSpeechFinished, t, utterance_id=utterance, played_ms=900)


def interrupted(t: float, utterance: str = "u1", source: str = "edge_vad") -> AgentInterrupted:
    return make(AgentInterrupted, t, utterance_id=utterance, played_ms=300, total_ms=900, source=source)


def tool_requested(t: float, tool_id: str = "tc1", name: str = "search_knowledge") -> ToolCallRequested:
    return make(ToolCallRequested, t, tool_call_id=tool_id, name=name, arguments_json="{}")


def tool_completed(t: float, tool_id: str = "tc1") -> ToolCallCompleted:
    return make(ToolCallCompleted, t, tool_call_id=tool_id, name="search_knowledge", result_json="{}",
                duration_ms=40)  # fmt: skip


def tool_failed(t: float, tool_id: str = "tc1") -> ToolCallFailed:
    return make(
        ToolCallFailed, t, tool_call_id=tool_id, name="search_knowledge", error="boom", duration_ms=40
    )


def transfer(t: float, target: str = "+15550009") -> TransferRequested:
    return make(TransferRequested, t, target=target, reason="sales")


def hang_up_requested(t: float, by: str = "agent", reason: str = "agent_hung_up") -> HangUpRequested:
    return make(HangUpRequested, t, requested_by=by, reason=reason)


def telephony(t: float, status: str, sip: int | None = None) -> TelephonyStatusChanged:
    return make(TelephonyStatusChanged, t, twilio_call_sid="CA-1", status=status, sip_response_code=sip)


def session_opened(t: float) -> GeminiSessionOpened:
    return make(GeminiSessionOpened, t, model="gemini-live", worker_id="w1")


def session_resumed(t: float, handle: str = "h1") -> GeminiSessionResumed:
    return make(GeminiSessionResumed, t, resumption_handle=handle, worker_id="w2", fresh_session=False)


def session_closed(t: float, handle: str | None = None) -> GeminiSessionClosed:
    return make(GeminiSessionClosed, t, reason="go_away", resumption_handle=handle)


def handle_updated(t: float, handle: str = "h1") -> ResumptionHandleUpdated:
    return make(ResumptionHandleUpdated, t, handle=handle)


def usage(t: float) -> UsageReported:
    return make(UsageReported, t, prompt_tokens=10, response_tokens=5, total_tokens=15)


def recording(t: float) -> RecordingAvailable:
    return make(RecordingAvailable, t, uri="file:///r.wav", duration_ms=5000, channels=2,
                sample_rate=8000, format="wav")  # fmt: skip


def voicemail(t: float, message: str = "Please call us back.") -> VoicemailRequested:
    return make(VoicemailRequested, t, message=message)


# Commands.
def end_call(t: float, by: str = "operator", reason: str = "operator ended it", **kw: Any) -> EndCall:
    return make(EndCall, t, requested_by=by, reason=reason, **kw)


def tick(t: float, **kw: Any) -> ClockTicked:
    return make(ClockTicked, t, now=at(t), **kw)


# Expected decided events; `then` fills in their envelope.
def call_ended(reason: str, by: str | None) -> CallEnded:
    return make(CallEnded, reason=reason, ended_by=by)


def call_failed(reason: str, detail: str | None) -> CallFailed:
    return make(CallFailed, reason=reason, detail=detail)


def hung_up(by: str, reason: str) -> HangUpRequested:
    return make(HangUpRequested, requested_by=by, reason=reason)


def command_rejected(command: EndCall, reason: str) -> CommandRejected:
    return make(
        CommandRejected, command_type=full_name(EndCall), reason=reason,
        rejected_event_id=command.event_id,
    )  # fmt: skip


def check_in(seq: int, silent_s: int) -> ToolCallRequested:
    return make(
        ToolCallRequested, tool_call_id=f"{SILENCE_CHECK_IN_TOOL}:{seq}", name=SILENCE_CHECK_IN_TOOL,
        arguments_json=f'{{"silent_s": {silent_s}}}',
    )  # fmt: skip


def numbered(record: R, seq: int, cause: CallInput | CallEvent) -> R:
    """record with the envelope the decider gives the seq-th event caused by cause."""
    return dataclasses.replace(  # type: ignore[type-var]
        record,
        tenant_id=TENANT,
        call_id=CALL,
        seq=seq,
        event_id=derive_event_id(CALL, seq),
        occurred_at=cause.occurred_at,
        correlation_id=cause.correlation_id,
    )


def log_of(*facts: CallEvent) -> list[CallEvent]:
    """facts as they stand on the event log: numbered 1, 2, ... in order."""
    return [numbered(fact, i, fact) for i, fact in enumerate(facts, start=1)]


@dataclass
class Outcome:
    """What `when` decided, ready for `then` assertions."""

    log: list[CallEvent]
    input: CallInput
    events: list[CallEvent]

    @property
    def before(self) -> CallState | None:
        return fold(self.log)

    @property
    def after(self) -> CallState:
        state = fold([*self.log, *self.events])
        assert state is not None
        return state

    def then(self, *expected: CallEvent) -> Outcome:
        """The decided events are exactly expected, numbered after the log, stamped from the input."""
        start = len(self.log) + 1
        assert self.events == [numbered(e, start + i, self.input) for i, e in enumerate(expected)]
        return self

    def then_appended(self) -> Outcome:
        """The input fact went on the log as it is, with the next seq, and nothing else."""
        return self.then(self.input)  # type: ignore[arg-type]

    def then_nothing(self) -> Outcome:
        assert self.events == []
        return self

    def then_state(self, **expected: Any) -> Outcome:
        """The state after the decided events has these attribute values."""
        actual = {name: getattr(self.after, name) for name in expected}
        assert actual == expected
        return self


@dataclass
class Given:
    """A call whose log holds the given facts."""

    log: list[CallEvent]
    limits: CallLimits = field(default=LIMITS)

    def when(self, input_: CallInput) -> Outcome:
        return Outcome(self.log, input_, decide(fold(self.log), input_, self.limits))


def given(*facts: CallEvent, limits: CallLimits = LIMITS) -> Given:
    """A call whose event log holds facts (numbered in order)."""
    return Given(log_of(*facts), limits)


def history(*inputs: CallInput, limits: CallLimits = LIMITS) -> list[CallEvent]:
    """The event log the decider writes for inputs, processed in order."""
    log: list[CallEvent] = []
    for input_ in inputs:
        log += decide(fold(log), input_, limits)
    return log


def live(*more: CallInput) -> list[CallEvent]:
    """Log of an inbound call that is in conversation since t=2, then more."""
    return history(received(0), stream_started(1), agent_started(2), agent_finished(3), *more)


def history_after(log: list[CallEvent], *inputs: CallInput, limits: CallLimits = LIMITS) -> list[CallEvent]:
    """The events the decider appends to log for inputs."""
    return history_from(log, inputs, limits)[len(log) :]


def history_from(log: list[CallEvent], inputs: tuple[CallInput, ...], limits: CallLimits) -> list[CallEvent]:
    log = list(log)
    for input_ in inputs:
        log += decide(fold(log), input_, limits)
    return log


class ShellPartition:
    """The calls shell fed one partition's records in order, with the table it keeps."""

    def __init__(self) -> None:
        self.handler = shell.CallInputHandler(SHELL_CODEC, LIMITS)
        self.stored: bytes | None = None
        self.offset = 0
        self.emitted: list[bytes] = []

    async def _emit(self, _key: bytes, value: bytes) -> None:
        self.emitted.append(value)

    async def feed(self, input_: CallInput) -> shell.Outcome:
        self.offset += 1
        outcome = await self.handler.handle(self.stored, SHELL_CODEC.encode(input_), self.offset, self._emit)
        if outcome.snapshot is not None:
            self.stored = outcome.snapshot
        return outcome
