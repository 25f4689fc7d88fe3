"""The dialer's side effects: place a decided attempt and report it, hang up or cancel, ask for a voicemail.

Every record goes to the broker with ``send_until_acknowledged``: a broker outage delays a dial,
it never fails one (ADR 12). Reports come back to the dialer as inputs on its requests topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from infra.kafka import send_until_acknowledged
from schemas.calls import CallReceived, TelephonyStatusChanged, VoicemailRequested
from schemas.catalog import CALL_INPUTS, DIALER_REQUESTS
from schemas.codec import Codec
from schemas.dialer import CallAttemptStarted, CallDialFailed, CallDialled, MachineAnswerHandled
from schemas.envelope import derive_event_id
from schemas.ids import CallId, CorrelationId, EventId, TenantId
from streams.dialer.decider import too_late_to_dial
from streams.dialer.policy import machine_detection_for
from streams.dialer.state import AgentInfo, Request
from streams.telephony.port import DialError, DialRequest, Telephony

log = logging.getLogger(__name__)

HANG_UP_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 20.0)
"""Between attempts to hang up (or cancel) a call after a retryable error; then it is left to run out."""

Send = Callable[[str, bytes, bytes], Awaitable[None]]
"""Publish (topic, key, value); ``send`` keeps order, ``send_and_wait`` also waits for the broker."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Dialling:
    """Places attempts (at most ``max_in_flight`` at once) and reports how each went."""

    def __init__(
        self,
        codec: Codec,
        telephony: Telephony,
        *,
        send_and_wait: Send,
        send_backoff_s: Sequence[float],
        hang_up_backoff_s: Sequence[float] = HANG_UP_BACKOFF_S,
        now: Callable[[], datetime] = utc_now,
        max_in_flight: int = 200,
    ) -> None:
        self._codec = codec
        self._telephony = telephony
        self._send_and_wait = send_and_wait
        self._send_backoff_s = send_backoff_s
        self._hang_up_backoff_s = hang_up_backoff_s
        self._now = now
        self._gate = asyncio.Semaphore(max_in_flight)

    async def dial(self, started: CallAttemptStarted, agent: AgentInfo, request: Request | None) -> None:
        """Put the attempt's call in the call log, place it unless that is too late now, report."""
        async with self._gate:
            refused = await self._log_call(started, agent, request)
            # The decision may be old by now (an outage held its events or CallReceived): the
            # window and the deadline are checked again at the moment the call would go out.
            late = None if refused is not None else too_late_to_dial(agent, request, self._now())
            outcome: str | DialError
            if refused is not None:
                outcome = refused
            elif late is not None:
                outcome = DialError(late, code=None, status=None, retryable=True)
            else:
                outcome = await self._place(started, agent, request)
        if isinstance(outcome, DialError):
            await self._report_failure(started, outcome, not_dialled=late is not None)
            return
        await self._report(
            CallDialled(
                **self._env(started, "dialled"),
                call_id=started.call_id,
                attempt_call_id=started.attempt_call_id,
                attempt=started.attempt,
                twilio_call_sid=outcome,
            )
        )

    async def _log_call(
        self, started: CallAttemptStarted, agent: AgentInfo, request: Request | None
    ) -> DialError | None:
        """Put the attempt's CallReceived in the call log, waiting out an outage (ADR 12)."""

        def received() -> CallReceived:
            # When the call is placed, not when it was decided: a request read late (after an
            # outage) must not reach the calls worker already past its setup timeout.
            return CallReceived(
                **self._call_input(
                    started.tenant_id, started.attempt_call_id, started.call_id, "call_received"
                ),
                direction="outbound",
                from_number=started.from_number,
                to_number=started.to_number,
                agent_id=started.agent_id,
                agent_version=started.agent_version,
                variables=dict(request.variables) if request else {},
                max_duration_s=agent.config.max_duration_s,
                silence_timeout_s=agent.config.silence_timeout_s,
            )

        key = started.attempt_call_id.encode()

        async def deliver() -> None:
            await self._send_and_wait(CALL_INPUTS.name, key, self._codec.encode(received()))

        what = f"CallReceived {started.attempt_call_id}"
        try:
            await send_until_acknowledged(deliver, self._send_backoff_s, what)
        except Exception as err:  # refused for the record itself (too large): this call cannot be
            log.exception("%s was refused", what)
            return DialError(f"the call log refused it: {err!r}", code=None, status=None, retryable=False)
        return None

    async def _place(
        self, started: CallAttemptStarted, agent: AgentInfo, request: Request | None
    ) -> str | DialError:
        """The call's sid, or why it was not placed."""
        try:
            return await self._telephony.place(
                DialRequest(
                    call_id=started.attempt_call_id,
                    tenant_id=started.tenant_id,
                    agent_id=started.agent_id,
                    agent_version=started.agent_version,
                    to_number=started.to_number,
                    from_number=started.from_number,
                    time_limit_s=agent.config.max_duration_s,
                    record=agent.config.record_calls,
                    machine_detection=machine_detection_for(agent.config),
                )
            )
        except DialError as err:
            return err
        except Exception as err:  # a bug in an adapter must still free the slot
            log.exception("dialling %s failed", started.attempt_call_id)
            return DialError(repr(err), code=None, status=None, retryable=False)

    async def _report_failure(
        self, started: CallAttemptStarted, err: DialError, *, not_dialled: bool = False
    ) -> None:
        await self._report(
            CallDialFailed(
                **self._env(started, "dial_failed"),
                call_id=started.call_id,
                attempt_call_id=started.attempt_call_id,
                attempt=started.attempt,
                error_code=err.code,
                http_status=err.status,
                message=err.message[:500],
                retryable=err.retryable,
                not_dialled=not_dialled,
            )
        )
        # End the attempt's call in the call log too; the dialer ignores the echo.
        failed = TelephonyStatusChanged(
            **self._call_input(started.tenant_id, started.attempt_call_id, started.call_id, "dial_failed"),
            twilio_call_sid="",
            status="failed",
        )
        await self._deliver(CALL_INPUTS.name, started.attempt_call_id, failed)

    def _call_input(
        self, tenant_id: TenantId, call_id: CallId, correlation: str, kind: str, at: datetime | None = None
    ) -> dict[str, Any]:
        """The envelope of an input the dialer writes to a call's log: seq 0, its id derived from
        the call and ``kind`` (a re-sent copy is the same record), stamped now unless ``at``."""
        return {
            "tenant_id": tenant_id,
            "call_id": call_id,
            "seq": 0,
            "event_id": derive_event_id(call_id, 0, f"dialer.{kind}"),
            "occurred_at": at or self._now(),
            "correlation_id": CorrelationId(correlation),
        }

    def _env(self, started: CallAttemptStarted, kind: str) -> dict[str, Any]:
        return {
            "tenant_id": started.tenant_id,
            "agent_id": started.agent_id,
            "seq": 0,
            "event_id": EventId(derive_event_id(started.attempt_call_id, started.attempt, f"dialer.{kind}")),
            "occurred_at": self._now(),
            "correlation_id": CorrelationId(CallId(started.call_id)),
        }

    async def _report(self, record: CallDialled | CallDialFailed) -> None:
        # Lost, the report would leave the attempt live until reaped and its request undone.
        await self._deliver(DIALER_REQUESTS.name, record.agent_id, record)

    async def _deliver(self, topic: str, key: str, record: Any) -> None:
        """Send one record and wait for its ack, sending it again while the broker is away (ADR 12)."""
        value = self._codec.encode(record)
        what = f"{type(record).__name__} for {key}"
        await send_until_acknowledged(
            partial(self._send_and_wait, topic, key.encode(), value), self._send_backoff_s, what
        )

    async def request_voicemail(self, handled: MachineAnswerHandled) -> None:
        """Tell the call (and so its session worker) to leave the message; the id is derived,
        so a re-decided MachineAnswerHandled asks once."""
        if not handled.voicemail_message:
            return
        call = handled.attempt_call_id
        request = VoicemailRequested(
            **self._call_input(
                handled.tenant_id, call, handled.correlation_id, "voicemail_requested", handled.occurred_at
            ),
            message=handled.voicemail_message,
        )
        try:
            await self._deliver(CALL_INPUTS.name, handled.attempt_call_id, request)
        except Exception:  # refused for the record itself: the call still ends by its own timers
            log.exception("asking call %s for a voicemail failed", handled.attempt_call_id)

    async def hang_up(self, call_sid: str) -> None:
        """Hang up on a machine, trying a retryable failure again a bounded number of times."""
        await self._end(call_sid, self._telephony.hang_up, "left to its time limit")

    async def cancel(self, call_sid: str) -> None:
        """Cancel a call not answered yet, as ``hang_up`` tries it (a call already over is no error)."""
        await self._end(call_sid, self._telephony.cancel, "left to ring out")

    async def _end(self, call_sid: str, end: Callable[[str], Awaitable[None]], otherwise: str) -> None:
        # Bounded: the call ends by its own time limit (or ring timeout) anyway; retrying only shortens it.
        for wait in (*self._hang_up_backoff_s, None):
            try:
                await end(call_sid)
                return
            except DialError as err:
                if not err.retryable or wait is None:
                    log.error("ending %s failed, %s: %s", call_sid, otherwise, err)
                    return
                log.warning("ending %s failed (%s); trying again in %.1f s", call_sid, err, wait)
            except Exception:  # a bug in an adapter must not take the dialer down
                log.exception("ending %s failed, %s", call_sid, otherwise)
                return
            await asyncio.sleep(wait)
