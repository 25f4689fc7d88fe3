"""Ending an outbound call nobody has answered yet: which calls to cancel, and what an attempt learns.

The call machine accepts an ``EndCall`` on a ringing outbound call as ``HangUpRequested``, but
the session worker hangs up over the edge's audio bridge, which exists only once the call is
answered: until then only the dialer, which holds the call's Twilio sid, can end it. It does so
with Twilio's ``canceled``, which ends a queued or ringing call and leaves an answered one to
the edge.

The attempt's outcome is the decider's (``outcomes.hang_up_asked``: ``canceled`` at once).
What is here is the Twilio side, judged on the state *before* the decider steps (the attempt
is still live then): the sid, from the dial report or a status callback, and the attempts
whose hang-up came before their sid, or whose dial was reported failed (a create that timed
out may have placed the call all the same): ``DialerState.cancel_when_known``. Both are noted from
the inputs, not the log: a restart forgets an attempt still waiting for its sid, and a sid
until the dial reports are folded again (``DialerShell.rebuild``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

from schemas.calls import HangUpRequested, TelephonyStatusChanged
from schemas.dialer import CallDialFailed, CallDialled
from schemas.ids import CallId
from streams.dialer.decider import DialerInput
from streams.dialer.state import DialerState

CallNews: TypeAlias = CallDialled | TelephonyStatusChanged | HangUpRequested
"""The inputs that tell an attempt its sid or that its call should end."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelCall:
    """Cancel an outbound call nobody has answered yet (Twilio ``canceled``)."""

    attempt_call_id: CallId
    twilio_call_sid: str


SID_WAIT = timedelta(hours=1)
"""Twilio's callbacks for a call come within its ringing time; a wait this old will see none."""


def _call_id(news: CallNews | CallDialFailed) -> CallId:
    return news.attempt_call_id if isinstance(news, CallDialled | CallDialFailed) else news.call_id


def _sid(news: CallNews) -> str | None:
    return None if isinstance(news, HangUpRequested) else news.twilio_call_sid or None


def cancellations(state: DialerState, input_: DialerInput) -> list[CancelCall]:
    """The calls input_ makes the dialer cancel, judged before the decider steps and ``note_call``.

    A hang-up asked for while the call is not answered cancels it once its sid is known: at
    once, or on the first dial report or status callback that brings the sid.
    """
    if not isinstance(input_, CallNews) or input_.tenant_id != state.tenant_id:
        return []
    if isinstance(input_, HangUpRequested):
        attempt = state.live.get(input_.call_id)
        if attempt is None or attempt.answered or attempt.twilio_call_sid is None:
            return []
        return [CancelCall(attempt_call_id=attempt.attempt_call_id, twilio_call_sid=attempt.twilio_call_sid)]
    call_id, sid = _call_id(input_), _sid(input_)
    if call_id not in state.cancel_when_known or sid is None:
        return []
    return [CancelCall(attempt_call_id=call_id, twilio_call_sid=sid)]


def note_call(state: DialerState, input_: DialerInput) -> DialerState:
    """Note the sid input_ brings on its live attempt, or that a cancel waits for the sid."""
    if not isinstance(input_, CallNews | CallDialFailed) or input_.tenant_id != state.tenant_id:
        return state
    call_id = _call_id(input_)
    if isinstance(input_, CallDialFailed):
        # A create that timed out may have placed the call: if a sid ever shows it did, cancel it.
        _await_sid(state, call_id, input_.occurred_at)
        return state
    attempt = state.live.get(call_id)
    if isinstance(input_, HangUpRequested):
        if attempt is not None and not attempt.answered and attempt.twilio_call_sid is None:
            _await_sid(state, call_id, input_.occurred_at)
        return state
    sid = _sid(input_)
    if sid is not None:
        state.cancel_when_known.pop(call_id, None)
        if attempt is not None and attempt.twilio_call_sid is None:
            attempt.twilio_call_sid = sid
    return state


def _await_sid(state: DialerState, call_id: CallId, at: datetime) -> None:
    """Cancel ``call_id`` when its sid arrives; waits older than SID_WAIT are given up."""
    waiting = state.cancel_when_known
    for old in [c for c, since in waiting.items() if at - since > SID_WAIT]:
        del waiting[old]
    waiting[call_id] = at


def follow_call(state: DialerState, input_: DialerInput) -> list[CancelCall]:
    """The calls input_ makes the dialer cancel, with input_ then noted (before ``step``)."""
    cancels = cancellations(state, input_)
    note_call(state, input_)
    return cancels
