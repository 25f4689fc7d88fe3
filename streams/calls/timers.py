"""Call timers, fired by ClockTicked inputs: setup, settle, max duration and silence."""

from datetime import datetime

from schemas.calls import CallEvent, ClockTicked, ToolCallRequested
from streams.calls.emit import ended, envelope, failed, hang_up
from streams.calls.state import SETTING_UP, SETTLING, TALKING, CallLimits, CallState, CallStatus

SILENCE_CHECK_IN_TOOL = "system:silence_check_in"
"""Tool name of the silence check-in the decider asks the session worker to speak.

The contract has no record for "say something"; a ToolCallRequested with this name stands in.
The colon makes it impossible as a Gemini function name, so it never collides with a real tool.
"""


def on_tick(state: CallState, tick: ClockTicked, limits: CallLimits) -> list[CallEvent]:
    """The events the timers due at tick.now cause; at most one timer fires per tick."""
    if state.status in SETTING_UP:
        return _setup(state, tick, limits)
    if state.status in SETTLING:
        return _settle(state, tick, limits)
    if state.status in TALKING:
        return _max_duration(state, tick, limits) or _silence(state, tick, limits)
    return []


def is_check_in(name: str) -> bool:
    """Whether a tool call is the machine's own silence check-in rather than the model's."""
    return name == SILENCE_CHECK_IN_TOOL


def _due(since: datetime | None, now: datetime, limit_s: int) -> bool:
    return limit_s > 0 and since is not None and (now - since).total_seconds() >= limit_s


def _setup(state: CallState, tick: ClockTicked, limits: CallLimits) -> list[CallEvent]:
    if not _due(state.started_at, tick.now, limits.setup_timeout_s):
        return []
    detail = f"not answered within {limits.setup_timeout_s}s (status {state.status})"
    return [failed(state, tick, 1, "setup_timeout", detail)]


def _settle(state: CallState, tick: ClockTicked, limits: CallLimits) -> list[CallEvent]:
    # The edge or Twilio never confirmed: the call ends as requested rather than staying open.
    if not _due(state.settling_since, tick.now, limits.settle_timeout_s):
        return []
    if state.status is CallStatus.TRANSFERRING:
        return [ended(state, tick, 1, "transferred", "agent")]
    return [ended(state, tick, 1, state.end_reason or "completed", state.ended_by)]


def _max_duration(state: CallState, tick: ClockTicked, limits: CallLimits) -> list[CallEvent]:
    if not _due(state.answered_at, tick.now, limits.max_duration_s):
        return []
    return [hang_up(state, tick, "system", "max_duration")]


def _silence(state: CallState, tick: ClockTicked, limits: CallLimits) -> list[CallEvent]:
    busy = state.caller_speaking or state.agent_utterance_id is not None or state.tools_in_flight
    if busy or not _due(state.last_activity_at, tick.now, limits.silence_timeout_s):
        return []
    if state.silence_checked_in:
        return [hang_up(state, tick, "system", "silence_timeout")]
    env = envelope(state, tick, 1)
    silent_s = int((tick.now - state.last_activity_at).total_seconds())
    return [
        ToolCallRequested(
            **env,
            tool_call_id=f"{SILENCE_CHECK_IN_TOOL}:{env['seq']}",
            name=SILENCE_CHECK_IN_TOOL,
            arguments_json=f'{{"silent_s": {silent_s}}}',
        )
    ]
