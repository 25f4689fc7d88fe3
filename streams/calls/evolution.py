"""How each call event changes the call's state: the evolve half of the decider."""

from dataclasses import replace
from datetime import datetime
from typing import TypeAlias, assert_never

from schemas.calls import (
    REQUESTERS,
    AgentInterrupted,
    AgentSpeechFinished,
    AgentSpeechStarted,
    CallEnded,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallEvent,
    CallFailed,
    CallReceived,
    CommandRejected,
    DtmfReceived,
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
from streams.calls.emit import end_reason
from streams.calls.state import (
    SETTING_UP,
    TRANSCRIPT_TAIL_CHARS,
    TRANSCRIPT_TAIL_SEGMENTS,
    CallState,
    CallStatus,
    MediaStream,
)
from streams.calls.timers import is_check_in

_Lifecycle: TypeAlias = (
    CallReceived
    | TelephonyStatusChanged
    | MediaStreamStarted
    | MediaStreamStopped
    | TransferRequested
    | HangUpRequested
    | CallEnded
    | CallFailed
    | CommandRejected
)
_Conversation: TypeAlias = (
    CallerSpeechStarted
    | CallerSpeechStopped
    | DtmfReceived
    | TranscriptSegment
    | PlaybackMarkReached
    | AgentSpeechStarted
    | AgentSpeechFinished
    | AgentInterrupted
)
_Session: TypeAlias = (
    GeminiSessionOpened
    | GeminiSessionResumed
    | GeminiSessionClosed
    | ResumptionHandleUpdated
    | ToolCallRequested
    | ToolCallCompleted
    | ToolCallFailed
    | UsageReported
    | RecordingAvailable
    | VoicemailRequested
)


def start(event: CallReceived) -> CallState:
    """The state of a call whose first event is event."""
    return CallState(
        call_id=event.call_id,
        tenant_id=event.tenant_id,
        seq=event.seq,
        status=CallStatus.DIALING if event.direction == "outbound" else CallStatus.RECEIVED,
        direction=event.direction,
        agent_id=event.agent_id,
        agent_version=event.agent_version,
        twilio_call_sid=event.twilio_call_sid,
        started_at=event.occurred_at,
        last_activity_at=event.occurred_at,
        variables=dict(event.variables),
    )


def evolve(state: CallState | None, event: CallEvent) -> CallState:
    """State after event. Re-delivered events (seq already applied) change nothing.

    Raises ValueError for a log that does not start with CallReceived: that log is corrupt.
    """
    if state is None:
        if isinstance(event, CallReceived):
            return start(event)
        raise ValueError(f"call {event.call_id}: first event is {type(event).__name__}")
    if event.seq <= state.seq:
        return state
    # Facts after the end are kept in the log as a record; they take no effect.
    changed = _apply(state, event) if state.live else state
    return replace(changed, seq=event.seq)


def _apply(state: CallState, event: CallEvent) -> CallState:
    match event:
        case (
            CallReceived()
            | TelephonyStatusChanged()
            | MediaStreamStarted()
            | MediaStreamStopped()
            | TransferRequested()
            | HangUpRequested()
            | CallEnded()
            | CallFailed()
            | CommandRejected()
        ):
            return _lifecycle(state, event)
        case (
            CallerSpeechStarted()
            | CallerSpeechStopped()
            | DtmfReceived()
            | TranscriptSegment()
            | PlaybackMarkReached()
            | AgentSpeechStarted()
            | AgentSpeechFinished()
            | AgentInterrupted()
        ):
            return _conversation(state, event)
        case _:
            return _session(state, event)


def _lifecycle(state: CallState, event: _Lifecycle) -> CallState:
    match event:
        case CallReceived() | MediaStreamStopped() | CommandRejected():
            # A stopped stream ends the call through the CallEnded/CallFailed decided with it.
            return state
        case TelephonyStatusChanged():
            return _telephony(state, event)
        case MediaStreamStarted():
            return _stream_started(state, event)
        case TransferRequested():
            return replace(
                state,
                status=CallStatus.TRANSFERRING,
                transfer_target=event.target,
                settling_since=event.occurred_at,
            )
        case HangUpRequested():
            return replace(
                state,
                status=CallStatus.ENDING,
                end_reason=end_reason(event.requested_by, event.reason),
                # CallEnded.ended_by must be one of REQUESTERS; an unknown requester is not.
                ended_by=event.requested_by if event.requested_by in REQUESTERS else None,
                settling_since=event.occurred_at,
            )
        case CallEnded():
            return _finish(state, CallStatus.ENDED, event.reason, event.ended_by, event.occurred_at)
        case CallFailed():
            return _finish(state, CallStatus.FAILED, event.reason, None, event.occurred_at)
        case _:
            assert_never(event)


def _conversation(state: CallState, event: _Conversation) -> CallState:
    at = event.occurred_at
    match event:
        case CallerSpeechStarted() | CallerSpeechStopped():
            return _caller_active(state, at, speaking=isinstance(event, CallerSpeechStarted))
        case DtmfReceived():
            return _caller_active(state, at, speaking=state.caller_speaking)
        case TranscriptSegment():
            state = replace(
                state,
                transcript_segments=max(state.transcript_segments, event.segment_index),
                transcript_tail=_transcript_tail(state.transcript_tail, event),
            )
            if event.speaker == "caller":
                return _caller_active(state, at, speaking=state.caller_speaking)
            return _active(state, at)
        case PlaybackMarkReached():
            return replace(state, agent_heard=True)
        case AgentSpeechStarted():
            return replace(
                _active(state, at),
                agent_utterance_id=event.utterance_id,
                agent_utterances=state.agent_utterances + 1,
            )
        case AgentSpeechFinished():
            return _utterance_over(_active(state, at), event.utterance_id)
        case AgentInterrupted():
            over = _utterance_over(_active(state, at), event.utterance_id)
            return replace(
                over,
                interruptions=state.interruptions + 1,
                last_interrupted_utterance_id=event.utterance_id,
                agent_heard=True,
            )
        case _:
            assert_never(event)


def _session(state: CallState, event: _Session) -> CallState:
    match event:
        case GeminiSessionOpened():
            # A fresh session: an earlier session's handle would resume that one instead (a
            # pre-warmed session's the caller never heard, say); this one's handle comes later.
            return replace(_new_session(state), resumption_handle=None)
        case GeminiSessionResumed():
            # A fresh restart reports an empty handle: no handle, not one to resume.
            return replace(_new_session(state), resumption_handle=event.resumption_handle or None)
        case GeminiSessionClosed():
            handle = event.resumption_handle or state.resumption_handle
            return replace(state, session_open=False, resumption_handle=handle)
        case ResumptionHandleUpdated():
            return replace(state, resumption_handle=event.handle or None)
        case ToolCallRequested():
            return _tool_requested(state, event)
        case ToolCallCompleted() | ToolCallFailed():
            remaining = tuple(t for t in state.tools_in_flight if t != event.tool_call_id)
            return replace(_active(state, event.occurred_at), tools_in_flight=remaining)
        case UsageReported() | RecordingAvailable():
            return state
        case VoicemailRequested():
            # The first request wins; the decider drops later ones.
            return (
                state
                if state.voicemail_message is not None
                else replace(state, voicemail_message=event.message)
            )
        case _:
            assert_never(event)


def _telephony(state: CallState, event: TelephonyStatusChanged) -> CallState:
    state = replace(state, twilio_call_sid=state.twilio_call_sid or event.twilio_call_sid)
    if event.status == "ringing" and state.status is CallStatus.DIALING:
        return replace(state, status=CallStatus.RINGING)
    if event.status == "in-progress":
        return _connect(state, event.occurred_at)
    return state


def _stream_started(state: CallState, event: MediaStreamStarted) -> CallState:
    stream = MediaStream(
        stream_sid=event.stream_sid,
        edge_id=event.edge_id,
        bridge_url=event.bridge_url,
        bridge_token=event.bridge_token,
        token_expires_at=event.token_expires_at,
    )
    sid = state.twilio_call_sid or event.twilio_call_sid
    return _connect(replace(state, stream=stream, twilio_call_sid=sid), event.occurred_at)


def _new_session(state: CallState) -> CallState:
    """A Live session (re)opened: tools and speech of the one before it are over.

    Their endings may never be recorded (the worker holding them was killed), and a tool or an
    utterance left in flight would keep the silence timer off for the rest of the call.
    """
    return replace(state, session_open=True, tools_in_flight=(), agent_utterance_id=None)


def _connect(state: CallState, at: datetime) -> CallState:
    if state.status not in SETTING_UP:
        return state
    # The silence timer starts when the line opens, not when the call was first announced.
    return replace(state, status=CallStatus.CONNECTED, answered_at=at, last_activity_at=at)


def _active(state: CallState, at: datetime) -> CallState:
    status = CallStatus.IN_CONVERSATION if state.status is CallStatus.CONNECTED else state.status
    # Inputs from different producers can arrive out of time order; silence never runs backwards.
    return replace(state, status=status, last_activity_at=max(state.last_activity_at, at))


def _caller_active(state: CallState, at: datetime, *, speaking: bool) -> CallState:
    # The caller answered: a later silence earns a fresh check-in before any hang-up.
    return replace(_active(state, at), caller_speaking=speaking, silence_checked_in=False)


def _utterance_over(state: CallState, utterance_id: str) -> CallState:
    if state.agent_utterance_id != utterance_id:
        return state
    return replace(state, agent_utterance_id=None)


def _tool_requested(state: CallState, event: ToolCallRequested) -> CallState:
    if is_check_in(event.name):
        return replace(state, silence_checked_in=True, last_activity_at=event.occurred_at)
    return replace(
        _active(state, event.occurred_at),
        tools_in_flight=(*state.tools_in_flight, event.tool_call_id),
        tool_calls=state.tool_calls + 1,
    )


def _finish(state: CallState, status: CallStatus, reason: str, by: str | None, at: datetime) -> CallState:
    return replace(
        state,
        status=status,
        ended_at=at,
        end_reason=reason,
        ended_by=by,
        settling_since=None,
        caller_speaking=False,
        agent_utterance_id=None,
        tools_in_flight=(),
    )


def _transcript_tail(tail: tuple[str, ...], segment: TranscriptSegment) -> tuple[str, ...]:
    """The call's latest final segments, bounded (``CallState.transcript_tail``)."""
    text = segment.text.strip()
    if not segment.final or not text:
        return tail
    line = f"{segment.speaker}: {text}"[:TRANSCRIPT_TAIL_CHARS]
    return (*tail, line)[-TRANSCRIPT_TAIL_SEGMENTS:]
