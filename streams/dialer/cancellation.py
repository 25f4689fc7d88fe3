"""Ending an outbound call nobody has answered yet: which calls to cancel, and what an attempt learns.

The call machine accepts an ``EndCall`` on a ringing outbound call as ``HangUpRequested``, but
the session worker hangs up over the edge's audio bridge, which exists only once the call is
answered: until then only the dialer, which holds the call's Twilio sid, can end it. It does so
with Twilio's ``canceled``, which ends a queued or ringing call and leaves an answered one to
the edge.

The attempt keeps its slot until its call ends; ``outcomes.call_over`` records it ``canceled``
when the operator ended it (``CallEnded.ended_by``, or a hang-up noted on the attempt), and
``dial_failed`` does not retry a dial refused after an operator's hang-up. A hang-up of an
earlier attempt read once the request's retry is dialling (the refusal that caused the retry
came on another topic) is the retry's: it is cancelled and not retried either.

The decider notes the hang-up in the dialer's log (``CallAttemptHangUpNoted``), and evolve
marks the attempt and, while its sid is unknown, waits for it
(``DialerState.cancel_when_known``): a state rebuilt from the log has both.

What is here is the Twilio side, judged on the state before the decider steps: which calls to
cancel, and the sid, from the dial report or a status callback. A call is cancelled at the
hang-up when its sid is known, else on the first dial report or status callback that brings
it; so is a dial reported failed that Twilio may have placed all the same (a wait noted here,
from the inputs). A restart folds the sids and those waits again from the dial reports
(``fold_report``, after the log), keeping every wait: a report the worker had not read before
it stopped is read again and must still cancel (a call already cancelled may so be cancelled
twice, which Twilio answers as done). A hang-up read again after a restart cancels again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

from schemas.calls import HangUpRequested, TelephonyStatusChanged
from schemas.dialer import CallDialFailed, CallDialled
from schemas.ids import CallId
from streams.dialer.decider import DialerInput, Tick
from streams.dialer.outcomes import retry_in_flight
from streams.dialer.state import Attempt, DialerState

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

    An operator's hang-up while the call is not answered cancels it once its sid is known: at
    once, or on the first dial report or status callback that brings the sid. So does a dial
    reported failed whose sid is known (a create that timed out after Twilio placed the call).
    """
    if isinstance(input_, Tick) or input_.tenant_id != state.tenant_id:
        return []
    if isinstance(input_, HangUpRequested | CallDialFailed):
        if isinstance(input_, HangUpRequested) and input_.requested_by != "operator":
            return []
        attempt = _ended_attempt(state, input_)
        if attempt is None or attempt.answered or attempt.twilio_call_sid is None:
            return []
        return [CancelCall(attempt_call_id=attempt.attempt_call_id, twilio_call_sid=attempt.twilio_call_sid)]
    if not isinstance(input_, CallNews):
        return []
    call_id, sid = _call_id(input_), _sid(input_)
    if call_id not in state.cancel_when_known or sid is None:
        return []
    return [CancelCall(attempt_call_id=call_id, twilio_call_sid=sid)]


def note_call(state: DialerState, input_: DialerInput) -> DialerState:
    """Note the sid input_ brings on its live attempt, or that a dial reported failed waits for
    one; give up waits older than ``SID_WAIT`` on a tick. (The decider notes hang-ups.)"""
    if isinstance(input_, Tick):
        _forget_waits(state, input_.now)
        return state
    if not isinstance(input_, CallDialled | TelephonyStatusChanged | CallDialFailed):
        return state
    if input_.tenant_id != state.tenant_id:
        return state
    call_id = _call_id(input_)
    attempt = state.live.get(call_id)
    if isinstance(input_, CallDialFailed):
        # A create that timed out may have placed the call (such a failure is not retryable):
        # if a sid ever shows it did, cancel it. A retryable refusal placed nothing.
        if not input_.retryable and (attempt is None or attempt.twilio_call_sid is None):
            state.cancel_when_known[call_id] = input_.occurred_at
        return state
    sid = _sid(input_)
    if sid is not None:
        state.cancel_when_known.pop(call_id, None)
        if attempt is not None and attempt.twilio_call_sid is None:
            attempt.twilio_call_sid = sid
    return state


def fold_report(state: DialerState, report: CallDialled | CallDialFailed) -> DialerState:
    """Fold a dial report on a restart (``DialerShell.rebuild``): the live attempt's sid, and a
    wait for the sid of a dial reported failed; unlike ``note_call``, it ends no wait."""
    if report.tenant_id != state.tenant_id:
        return state
    if isinstance(report, CallDialFailed):
        return note_call(state, report)
    attempt = state.live.get(report.attempt_call_id)
    if attempt is not None and attempt.twilio_call_sid is None:
        attempt.twilio_call_sid = report.twilio_call_sid or None
    return state


def _ended_attempt(state: DialerState, news: HangUpRequested | CallDialFailed) -> Attempt | None:
    """The live attempt whose call news ends: its own, or, for a hang-up of an earlier attempt
    read once its retry is dialling, the retry's (``outcomes.retry_in_flight``)."""
    call_id = _call_id(news)
    attempt = state.live.get(call_id)
    if attempt is None and isinstance(news, HangUpRequested):
        return retry_in_flight(state, call_id)
    return attempt


def _forget_waits(state: DialerState, now: datetime) -> None:
    """Give up waits for a sid older than SID_WAIT: no callback will bring one now."""
    waiting = state.cancel_when_known
    for old in [c for c, since in waiting.items() if now - since > SID_WAIT]:
        del waiting[old]


def follow_call(state: DialerState, input_: DialerInput) -> list[CancelCall]:
    """The calls input_ makes the dialer cancel, with input_ then noted (before ``step``)."""
    cancels = cancellations(state, input_)
    note_call(state, input_)
    return cancels
