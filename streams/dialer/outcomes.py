"""How an attempt ends: answered, a machine, busy or no answer, a refused dial, or lost; retried or not."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from schemas.calls import CallEnded, CallFailed, HangUpRequested, TelephonyStatusChanged
from schemas.dialer import CallAttemptHangUpNoted, CallAttemptRecorded, CallDialFailed, MachineAnswerHandled
from schemas.ids import CallId
from streams.dialer.emitter import Emitter, attempt_call_id, completed
from streams.dialer.options import DialerOptions
from streams.dialer.policy import RETRYABLE_OUTCOMES
from streams.dialer.scheduling import next_dial_at
from streams.dialer.state import Attempt, DialerState, Request

_MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax")
_UNKNOWN_AGENT_MAX_DURATION_S = 4 * 60 * 60  # the longest any agent may allow (agent_rules)
_UNANSWERED_ENDS = {"busy": "busy", "no_answer": "no_answer", "canceled": "canceled", "failed": "failed"}


def recorded(out: Emitter, attempt: Attempt, request: Request | None, outcome: str, **extra: Any) -> None:
    """One attempt is over (or answered): say how."""
    out.add(
        CallAttemptRecorded(
            **out.env(attempt.agent_id, attempt.call_id),
            call_id=attempt.call_id,
            attempt_call_id=attempt.attempt_call_id,
            attempt=attempt.attempt,
            outcome=outcome,
            campaign_id=request.campaign_id if request else None,
            **extra,
        )
    )


def lost_after(state: DialerState, attempt: Attempt, options: DialerOptions) -> datetime:
    """When a live attempt that has heard no outcome is given up as lost (``reap_lost``)."""
    agent = state.agents.get(attempt.agent_id)
    max_duration_s = agent.config.max_duration_s if agent else _UNKNOWN_AGENT_MAX_DURATION_S
    return attempt.started_at + timedelta(seconds=max_duration_s + options.lost_attempt_slack_s)


def reap_lost(state: DialerState, now: datetime, options: DialerOptions, out: Emitter) -> None:
    """Free the slots of attempts that will never hear their outcome."""
    # The calls worker ends every call by its max duration, so an attempt still live well after
    # it will never hear its outcome (a call the calls worker never took, say, because its id
    # was reused): free its slot rather than hold it until a restart.
    for attempt in list(state.live.values()):
        lost_at = lost_after(state, attempt, options)
        if now < lost_at:
            continue
        request = state.requests.get(attempt.call_id)
        detail = f"no outcome by {lost_at.isoformat()} (max duration plus {options.lost_attempt_slack_s:g} s)"
        recorded(out, attempt, request, "lost", detail=detail)
        if request is not None:
            completed(out, request, "completed" if attempt.answered else "failed", attempt.answered)


def on_status(state: DialerState, fact: TelephonyStatusChanged, out: Emitter) -> None:
    """A Twilio status callback: a machine answer per the agent's policy, or the answer."""
    attempt = state.live.get(fact.call_id)
    if attempt is None:
        return
    request = state.requests.get(attempt.call_id)
    if fact.answered_by in _MACHINE and not attempt.machine:
        agent = state.agents.get(attempt.agent_id)
        policy = agent.config.answering_machine_policy if agent else "hang_up"
        message = agent.config.voicemail_message if agent else None
        if policy != "ignore":
            action = "leave_message" if policy == "leave_message" and message else "hang_up"
            out.add(
                MachineAnswerHandled(
                    **out.env(attempt.agent_id, attempt.call_id),
                    call_id=attempt.call_id,
                    attempt_call_id=attempt.attempt_call_id,
                    twilio_call_sid=fact.twilio_call_sid or None,
                    answered_by=fact.answered_by or "machine_start",
                    action=action,
                    voicemail_message=message if action == "leave_message" else None,
                )
            )
            if not attempt.answered:
                recorded(out, attempt, request, "machine", twilio_call_sid=fact.twilio_call_sid or None)
            return
    answered = fact.status == "in-progress" or fact.answered_by is not None
    if answered and not attempt.answered:
        recorded(out, attempt, request, "answered", twilio_call_sid=fact.twilio_call_sid or None)


def call_over(state: DialerState, fact: CallEnded | CallFailed, options: DialerOptions, out: Emitter) -> None:
    """The attempt's call ended in the call log: the request completes, or is retried."""
    attempt = state.live.get(fact.call_id)
    if attempt is None:
        return
    request = state.requests.get(attempt.call_id)
    reason = fact.reason if isinstance(fact, CallEnded) else "failed"
    by_operator = isinstance(fact, CallEnded) and fact.ended_by == "operator"
    if not attempt.answered and (by_operator or attempt.hang_up_requested):
        # Ended as the operator asked before anyone answered, even if Twilio's cancel did not get
        # through and the call machine's timer ended it with the operator's (free text) reason,
        # or the call rang out (or failed) before the cancel landed.
        reason = "canceled"
    if attempt.answered or reason not in _UNANSWERED_ENDS:
        if request is not None:
            completed(out, request, "machine" if attempt.machine else "completed", True)
        return
    outcome = _UNANSWERED_ENDS[reason]
    detail = fact.detail if isinstance(fact, CallFailed) else None
    stopped = _campaign_stopped(state, request)
    _unanswered(out, attempt, request, outcome, options, fact.occurred_at, detail=detail, stopped=stopped)


def dial_failed(state: DialerState, fact: CallDialFailed, options: DialerOptions, out: Emitter) -> None:
    """Twilio refused (or may not have taken) the dial."""
    attempt = state.live.get(fact.attempt_call_id)
    if attempt is None or attempt.answered:
        return
    request = state.requests.get(attempt.call_id)
    if attempt.hang_up_requested:  # the operator ended it meanwhile: nothing to try again
        _unanswered(out, attempt, request, "canceled", options, fact.occurred_at, detail=fact.message)
        return
    if fact.not_dialled:
        _not_dialled(state, attempt, request, fact, out)
        return
    _unanswered(
        out,
        attempt,
        request,
        "error",
        options,
        fact.occurred_at,
        retryable=fact.retryable,
        stopped=_campaign_stopped(state, request),
        error_code=fact.error_code,
        detail=fact.message,
    )


def _not_dialled(
    state: DialerState, attempt: Attempt, request: Request | None, fact: CallDialFailed, out: Emitter
) -> None:
    """The shell's last check refused the dial (``too_late_to_dial``): nobody was called, so the
    attempt costs nothing; the request waits for its window, or ends at its deadline (also when
    the window opens again only at or after it)."""
    now = out.now
    deadline = request.deadline if request is not None else None
    opens = next_dial_at(state.agents.get(attempt.agent_id), now)
    # A window opening at or after the deadline is as good as a deadline passed (``_readiness``).
    expired = deadline is not None and opens >= deadline
    again = request is not None and not expired and not _campaign_stopped(state, request)
    retry_at = opens if again else None
    recorded(out, attempt, request, "not_dialled", retry_at=retry_at, detail=fact.message)
    if request is not None and retry_at is None:
        completed(out, request, "deadline_passed" if expired else "failed", False)


def _unanswered(
    out: Emitter,
    attempt: Attempt,
    request: Request | None,
    outcome: str,
    options: DialerOptions,
    now: datetime,
    *,
    retryable: bool = True,
    stopped: bool = False,
    **extra: Any,
) -> None:
    retry_at = None
    if retryable and outcome in RETRYABLE_OUTCOMES and request is not None and not stopped:
        # Attempts not dialled rang nobody: they count neither for the maximum nor the back-off.
        retry_at = options.retry.retry_at(attempt.attempt - request.not_dialled, now)
        if retry_at is not None and request.deadline is not None and retry_at > request.deadline:
            retry_at = None
    recorded(out, attempt, request, outcome, retry_at=retry_at, **extra)
    if retry_at is None and request is not None:
        completed(out, request, "failed", False)


def _campaign_stopped(state: DialerState, request: Request | None) -> bool:
    campaign = state.campaigns.get(request.campaign_id) if request and request.campaign_id else None
    return campaign is not None and campaign.cancelled


def hang_up_asked(state: DialerState, fact: HangUpRequested, options: DialerOptions, out: Emitter) -> None:
    """An operator ended the call of an attempt nobody has answered: noted in the log; or of a
    request waiting to retry it: the request ends, not retried.

    A live attempt keeps its slot until its call ends (Twilio's cancel, or the call machine's
    timer). ``CallAttemptHangUpNoted`` marks it, so that the call's unanswered end and a dial
    refused afterwards are ``canceled``, not retried, and a cancel waits for the call's sid,
    also in a state rebuilt from the log. A hang-up of an earlier attempt read once a retry is
    dialling is the retry's (``retry_in_flight``). Only the operator: the agent, the caller and
    the system hang up calls that were answered, whatever the dialer has heard of the answer.
    """
    if fact.requested_by != "operator":
        return
    attempt = state.live.get(fact.call_id) or retry_in_flight(state, fact.call_id)
    if attempt is not None:
        if not attempt.answered and not attempt.hang_up_requested:  # read again: noted already
            _hang_up_noted(state, attempt, fact.call_id, out)
        return
    found = attempt_of(state, fact.call_id)
    if found is not None and not found[0].dialling and found[1] == found[0].attempts:
        completed(out, found[0], "failed", False)


def _hang_up_noted(state: DialerState, attempt: Attempt, ended_call_id: CallId, out: Emitter) -> None:
    request = state.requests.get(attempt.call_id)
    out.add(
        CallAttemptHangUpNoted(
            **out.env(attempt.agent_id, attempt.call_id),
            call_id=attempt.call_id,
            attempt_call_id=attempt.attempt_call_id,
            attempt=attempt.attempt,
            ended_call_id=ended_call_id,
            campaign_id=request.campaign_id if request else None,
        )
    )


def retry_in_flight(state: DialerState, call_id: CallId) -> Attempt | None:
    """The live attempt of the request that an earlier attempt with the call ``call_id`` had.

    The operator ended that earlier call, but the dialer read it only once the retry had started
    (the refusal that caused the retry came on another topic): the hang-up is the retry's.
    """
    found = attempt_of(state, call_id)
    if found is None or not found[0].dialling or found[1] >= found[0].attempts:
        return None
    request = found[0]
    return state.live.get(attempt_call_id(request.call_id, request.attempts))


def attempt_of(state: DialerState, call_id: CallId) -> tuple[Request, int] | None:
    """The request one of whose attempts started so far had the call ``call_id``, and its number."""
    base, _, number = call_id.rpartition("-a")
    candidates = [(CallId(call_id), 1), *([(CallId(base), int(number))] if base and number.isdigit() else [])]
    for candidate, attempt in candidates:
        request = state.requests.get(candidate)
        if (
            request is not None
            and 1 <= attempt <= request.attempts
            and attempt_call_id(request.call_id, attempt) == call_id
        ):
            return request, attempt
    return None
