"""After a restart: attempts the dialer's log says started whose dial never went out.

The shell records an attempt (``CallAttemptStarted``, acknowledged) before it dials. The dial
then, in order: waits for a place among the dials in flight (``max_in_flight``), puts the
attempt's call in the call log (``CallReceived`` on the call inputs, waiting out a broker
outage until it is acknowledged), checks the window and deadline again, asks Twilio
(``calls.create``), and reports (``CallDialled`` or ``CallDialFailed`` on the requests topic).
A dialer stopped before the report leaves, in a state rebuilt from its log, an attempt live with
no sid that nobody will dial; without more it would hold its slot until ``reap_lost`` gave it up
(the agent's max duration plus the slack) and end its request ``failed``.

What the records allow (the dial report and the attempt's ``CallReceived``):

- a report: the usual path, the report is read as an input (or was already);
- no report, the ``CallReceived`` in the call log: Twilio may have been asked (the answer lost
  with the dialer), so it is not dialled again. The call log settles it: Twilio's callbacks
  for a call it placed, else the calls worker's setup timeout, end the call, and ``call_over``
  the attempt, as for any call;
- no report and no ``CallReceived``: the dial stopped before the call log took the call, so
  before Twilio could be asked (the call is logged, and acknowledged, first). It is reported
  ``not_dialled``, as a dial the last check refused: it rang nobody, costs no attempt, and its
  request waits for its window (``outcomes.dial_failed``).

Only attempts not lost yet: an older one is reaped as before, since its ``CallReceived`` may
be past the call inputs' retention and no longer tell. The rule trusts the call inputs to hold
what the broker acknowledged: a log restored from an archive that lags it (ADR 20, dev only)
can lack a ``CallReceived`` that was written.

Where to look (``call_log_search``): a ``CallReceived`` is keyed by its attempt's call id, so it
is in the one partition of the call inputs that id hashes to, and it is written after its
attempt starts, so the search starts at the earliest unreported attempt's start, less
``CALL_LOG_MARGIN``. Reading the whole topic (every media fact of every call) could hold the
restarted dialer for minutes.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.dialer import CallDialFailed
from schemas.envelope import derive_event_id
from schemas.ids import CallId, CorrelationId, EventId
from streams.dialer.options import DialerOptions
from streams.dialer.outcomes import lost_after
from streams.dialer.state import Attempt, DialerState

CALL_LOG_MARGIN = timedelta(minutes=30)
"""How long before the earliest unreported attempt's start the call inputs are read from.

Where each partition is read from is found by the records' Kafka timestamps (create time: each
producer's clock), with a search that takes them to rise along it, while the call inputs have
many producers (the dialer, edge nodes, the API, session workers). A record written after the
``CallReceived`` but stamped earlier than the search's start (a clock behind, a batch stamped
when sent and appended after the producer's retries, a start stamped with a decider's clock
ahead of its host's) could make the search pass over it, and the attempt be dialled again.
Thirty minutes is far beyond NTP skew, and beyond the longest a producer of the call inputs
keeps retrying a batch it stamped: 15 s for ``infra.kafka``'s (the edge's), 20 minutes for a
Faust app's (``producer_request_timeout``, which ``make_app`` leaves at Faust's default). It
costs thirty minutes more of a few partitions, against the topic's seven days."""

NEVER_LOGGED = "not dialled: the dialer stopped before the call was logged, so before Twilio was asked"


def unreported(
    state: DialerState, reported: Collection[CallId], now: datetime, options: DialerOptions
) -> list[Attempt]:
    """Live attempts, not lost yet, with no sid and no dial report: whether they went out is
    for the call log to say (``never_dialled``)."""
    return [
        attempt
        for attempt in state.live.values()
        if attempt.twilio_call_sid is None
        and attempt.attempt_call_id not in reported
        and now < lost_after(state, attempt, options)
    ]


@dataclass(frozen=True, slots=True)
class CallLogSearch:
    """Where the call inputs can hold the ``CallReceived`` of the unreported attempts: in the
    partitions their call ids are keyed to, stamped from ``since`` on."""

    call_ids: frozenset[CallId]
    since: datetime


def call_log_search(
    attempts: Collection[Attempt], margin: timedelta = CALL_LOG_MARGIN
) -> CallLogSearch | None:
    """The search for the ``CallReceived`` of ``attempts`` (``unreported``); None if there are none."""
    if not attempts:
        return None
    return CallLogSearch(
        call_ids=frozenset(attempt.attempt_call_id for attempt in attempts),
        since=min(attempt.started_at for attempt in attempts) - margin,
    )


def never_dialled(
    state: DialerState,
    reported: Collection[CallId],
    logged: Collection[CallId],
    now: datetime,
    options: DialerOptions,
) -> list[CallDialFailed]:
    """The reports, stamped ``now``, of the unreported attempts whose call is not in the call
    log (``logged``: the call ids of its ``CallReceived``): not dialled.

    Each is the report the stopped dial would have sent had its last check refused it (the
    same derived event id, so a copy sent again is the same record).
    """
    return [
        CallDialFailed(
            tenant_id=state.tenant_id,
            agent_id=attempt.agent_id,
            seq=0,
            event_id=EventId(derive_event_id(attempt.attempt_call_id, attempt.attempt, "dialer.dial_failed")),
            occurred_at=now,
            correlation_id=CorrelationId(attempt.call_id),
            call_id=attempt.call_id,
            attempt_call_id=attempt.attempt_call_id,
            attempt=attempt.attempt,
            message=NEVER_LOGGED,
            retryable=True,
            not_dialled=True,
        )
        for attempt in unreported(state, reported, now, options)
        if attempt.attempt_call_id not in logged
    ]
