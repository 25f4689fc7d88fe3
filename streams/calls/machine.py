"""The call decider: decide(state, input, limits) -> events, evolve, fold; pure and deterministic.

Choices recorded here:

- Every emitted event gets the next ``seq``, ``event_id = derive_event_id(call_id, seq)``, and
  ``occurred_at`` and ``correlation_id`` from the input that caused it, never from a clock. So
  an input re-processed from the same state after a crash re-emits byte-identical events.
- Facts are never rejected. On a live call a fact is appended to the event log (re-numbered)
  unless it is moot: a duplicate ``CallReceived``, a ``TransferRequested`` outside a connected
  call, a ``HangUpRequested`` while already ending, a ``VoicemailRequested`` while ending or
  transferring or after one was already recorded, or an ``AgentInterrupted`` for the utterance
  already recorded as interrupted (the edge's fast path and the model both report barge-in).
  Every event before the end has therefore taken effect, and workers may act on it.
- Facts arriving after the end (the recording, final usage, Twilio's ``completed``) are
  appended to the log and change nothing but ``seq``: the call's log is its whole history.
  ``ClockTicked`` after the end produces nothing. (The shell forgets a call once it has been
  over for ``streams.ended_call_retention_s``; later facts then find no call: ADR 11.)
- Inputs for a call with no ``CallReceived`` yet produce nothing (there is no aggregate to
  number them on); the inputs topic keeps them. Inputs from another tenant produce nothing,
  except ``EndCall``, which is rejected.
- ``EndCall`` is accepted as a ``HangUpRequested``; the call ends when the edge or Twilio
  confirms (``MediaStreamStopped`` or a terminal ``TelephonyStatusChanged``), or when the
  settle timer runs out.
- Timers run on ``ClockTicked.now``; limits come from the call's pinned agent version.
"""

from collections.abc import Iterable
from typing import assert_never

from schemas.calls import (
    REQUESTERS,
    AgentInterrupted,
    AgentSpeechFinished,
    AgentSpeechStarted,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallEvent,
    CallFact,
    CallInput,
    CallReceived,
    ClockTicked,
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
from streams.calls.emit import appended, ended, failed, hang_up, rejected
from streams.calls.evolution import evolve
from streams.calls.state import SETTLING, TALKING, CallLimits, CallState, CallStatus
from streams.calls.timers import on_tick

__all__ = ["decide", "evolve", "fold"]

_TELEPHONY_ENDS = {"busy": "busy", "no-answer": "no_answer", "canceled": "canceled"}


def decide(state: CallState | None, input_: CallInput, limits: CallLimits) -> list[CallEvent]:
    """The events input_ causes on a call in state (None: the call has no events yet)."""
    match input_:
        case EndCall():
            return _end_call(state, input_) if state else []
        case ClockTicked():
            if state is None or not state.live or input_.tenant_id != state.tenant_id:
                return []
            return on_tick(state, input_, limits)
        case _:
            return _on_fact(state, input_)


def fold(events: Iterable[CallEvent]) -> CallState | None:
    """The state a call's event log leads to; None for an empty log."""
    state: CallState | None = None
    for event in events:
        state = evolve(state, event)
    return state


def _end_call(state: CallState, command: EndCall) -> list[CallEvent]:
    refusal = _refusal(state, command)
    if refusal is not None:
        return [rejected(state, command, refusal)]
    return [hang_up(state, command, command.requested_by, command.reason)]


def _refusal(state: CallState, command: EndCall) -> str | None:
    if command.tenant_id != state.tenant_id:
        return "tenant_mismatch"
    if not state.live:
        return "call_already_ended"
    if state.status is CallStatus.ENDING:
        return "call_already_ending"
    if command.requested_by not in REQUESTERS:
        return "unknown_requester"
    return None


def _on_fact(state: CallState | None, fact: CallFact) -> list[CallEvent]:
    if state is None:
        return [appended(None, fact)] if isinstance(fact, CallReceived) else []
    if fact.tenant_id != state.tenant_id or isinstance(fact, CallReceived):
        return []
    if not state.live:
        return [appended(state, fact)]
    return _on_live_fact(state, fact)


def _on_live_fact(state: CallState, fact: CallFact) -> list[CallEvent]:
    match fact:
        case MediaStreamStopped():
            return _stream_stopped(state, fact)
        case TelephonyStatusChanged():
            return _telephony(state, fact)
        case TransferRequested():
            return [appended(state, fact)] if state.status in TALKING else []
        case HangUpRequested():
            return [] if state.status is CallStatus.ENDING else [appended(state, fact)]
        case VoicemailRequested():
            moot = state.voicemail_message is not None or state.status in SETTLING
            return [] if moot else [appended(state, fact)]
        case AgentInterrupted():
            repeated = fact.utterance_id == state.last_interrupted_utterance_id
            return [] if repeated else [appended(state, fact)]
        case (
            CallReceived()
            | MediaStreamStarted()
            | CallerSpeechStarted()
            | CallerSpeechStopped()
            | DtmfReceived()
            | PlaybackMarkReached()
            | TranscriptSegment()
            | AgentSpeechStarted()
            | AgentSpeechFinished()
            | ToolCallRequested()
            | ToolCallCompleted()
            | ToolCallFailed()
            | GeminiSessionOpened()
            | GeminiSessionResumed()
            | GeminiSessionClosed()
            | ResumptionHandleUpdated()
            | UsageReported()
            | RecordingAvailable()
        ):
            return [appended(state, fact)]
        case _:
            assert_never(fact)


def _stream_stopped(state: CallState, fact: MediaStreamStopped) -> list[CallEvent]:
    events: list[CallEvent] = [appended(state, fact)]
    if state.stream is not None and fact.stream_sid != state.stream.stream_sid:
        return events  # a stream the call no longer uses
    if state.status is CallStatus.TRANSFERRING and fact.reason == "transfer_failed":
        return [*events, failed(state, fact, 2, "transfer_failed", "the carrier refused the transfer")]
    if state.status in (CallStatus.ENDING, CallStatus.TRANSFERRING) or fact.reason == "twilio_stop":
        return [*events, _hung_up(state, fact)]
    if fact.reason == "hangup":
        # The edge hung up for a worker whose HangUpRequested has not reached us yet (two
        # producers, no order between them): the agent ended the call.
        return [*events, ended(state, fact, 2, "agent_hung_up", "agent")]
    if fact.reason == "no_agent":
        # The edge gave up waiting for a session worker on the audio bridge and told the caller.
        return [*events, failed(state, fact, 2, "no_agent", "no session worker served the call's audio")]
    return [*events, failed(state, fact, 2, "media_stream_lost", fact.reason)]


def _telephony(state: CallState, fact: TelephonyStatusChanged) -> list[CallEvent]:
    events: list[CallEvent] = [appended(state, fact)]
    if fact.status == "completed":
        return [*events, _hung_up(state, fact)]
    if fact.status in _TELEPHONY_ENDS:
        return [*events, ended(state, fact, 2, _TELEPHONY_ENDS[fact.status], None)]
    if fact.status == "failed":
        detail = f"sip {fact.sip_response_code}" if fact.sip_response_code else None
        return [*events, failed(state, fact, 2, "telephony_failed", detail)]
    return events


def _hung_up(state: CallState, fact: CallFact) -> CallEvent:
    """CallEnded after the line closed, as the second event caused by fact."""
    if state.status is CallStatus.ENDING:
        return ended(state, fact, 2, state.end_reason or "completed", state.ended_by)
    if state.status is CallStatus.TRANSFERRING:
        return ended(state, fact, 2, "transferred", "agent")
    # Nobody on our side asked for it, so the caller hung up.
    return ended(state, fact, 2, "caller_hung_up", "caller")
