"""Ending an outbound call nobody has answered yet: which calls to cancel, and what an attempt learns.

The call machine accepts an ``EndCall`` on a ringing outbound call as ``HangUpRequested``, but
the session worker hangs up over the edge's audio bridge, which exists only once the call is
answered: until then only the dialer, which holds the call's Twilio sid, can end it. It does so
with Twilio's ``canceled``, which ends a queued or ringing call and leaves an answered one to
the edge.

No dialer event records this: the call's own log says how it ends (``CallEnded(canceled)``,
an attempt outcome that is not retried). The sid and a hang-up asked for before the sid was
known are noted on the live attempt from the inputs (``note_call``), so a restart forgets a
hang-up request whose dial report had not arrived yet, and a sid until the dial reports are
folded again (``DialerShell.rebuild``) or the next status callback brings it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from schemas.calls import HangUpRequested, TelephonyStatusChanged
from schemas.dialer import CallDialled
from schemas.ids import CallId
from streams.dialer.decider import DialerInput
from streams.dialer.state import Attempt, DialerState

CallNews: TypeAlias = CallDialled | TelephonyStatusChanged | HangUpRequested
"""The inputs that tell an attempt its sid or that its call should end."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelCall:
    """Cancel an outbound call nobody has answered yet (Twilio ``canceled``)."""

    attempt_call_id: CallId
    twilio_call_sid: str


def _attempt(state: DialerState, news: CallNews) -> Attempt | None:
    call_id = news.attempt_call_id if isinstance(news, CallDialled) else news.call_id
    if news.tenant_id != state.tenant_id:
        return None
    return state.live.get(call_id)


def _sid(news: CallNews) -> str | None:
    return None if isinstance(news, HangUpRequested) else news.twilio_call_sid or None


def cancellations(state: DialerState, input_: DialerInput) -> list[CancelCall]:
    """The calls input_ makes the dialer cancel, judged on the state before ``note_call`` notes it.

    A hang-up asked for while the call is not answered cancels it once its sid is known: at
    once, or on the first dial report or status callback that brings the sid.
    """
    if not isinstance(input_, CallNews):
        return []
    attempt = _attempt(state, input_)
    if attempt is None or attempt.answered:
        return []
    if isinstance(input_, HangUpRequested):
        sid = attempt.twilio_call_sid
    elif attempt.hang_up_requested and attempt.twilio_call_sid is None:
        sid = _sid(input_)
    else:
        sid = None
    return [] if sid is None else [CancelCall(attempt_call_id=attempt.attempt_call_id, twilio_call_sid=sid)]


def note_call(state: DialerState, input_: DialerInput) -> DialerState:
    """Note on its live attempt the sid input_ brings, or that its call was asked to end."""
    if not isinstance(input_, CallNews):
        return state
    attempt = _attempt(state, input_)
    if attempt is None:
        return state
    if isinstance(input_, HangUpRequested):
        attempt.hang_up_requested = attempt.hang_up_requested or not attempt.answered
    elif attempt.twilio_call_sid is None:
        attempt.twilio_call_sid = _sid(input_)
    return state


def follow_call(state: DialerState, input_: DialerInput) -> list[CancelCall]:
    """The calls input_ makes the dialer cancel, with input_ then noted on its attempt (after ``step``)."""
    cancels = cancellations(state, input_)
    note_call(state, input_)
    return cancels
