"""The call's resumption handle across its Live connections, and the session facts that track it."""

from __future__ import annotations

from dataclasses import replace

from schemas.call_session import (
    GeminiSessionClosed,
    GeminiSessionOpened,
    GeminiSessionResumed,
    ResumptionHandleUpdated,
)
from streams.sessions.facts import Reporter
from streams.sessions.live_config import SessionPlan
from streams.sessions.recovery import ModelFailure, backoff_s, retry


class Resumption:
    """Which handle the next connection resumes, how many failed in a row, and what is recorded."""

    def __init__(self, facts: Reporter, *, handle: str | None, worker_id: str, max_reconnects: int) -> None:
        self.handle = handle
        self._facts = facts
        self._worker_id = worker_id
        self._max_reconnects = max_reconnects
        self._failures = 0
        self._taken_over = handle is not None
        """Started from the call's handle: the call had begun before this session."""

    def began(self, *, spoken: bool) -> bool:
        """Has the call's conversation begun, in this session (spoken) or before it?"""
        return spoken or self._taken_over

    def next_plan(
        self, base: SessionPlan, *, spoken: bool, transcript: list[str]
    ) -> tuple[SessionPlan, bool]:
        """The next connection's plan, and whether it is fresh (no handle, the call already begun,
        here or before this session took it over)."""
        plan = replace(base, resumption_handle=self.handle)
        fresh = self.handle is None and self.began(spoken=spoken)
        if fresh:
            before = base.call_transcript if self._taken_over else ()
            plan = replace(plan, transcript_so_far=(*before, *transcript))
        return plan, fresh

    async def opened(self, model: str, *, fresh: bool) -> None:
        if self.handle is not None or fresh:
            await self._facts.report(
                GeminiSessionResumed,
                resumption_handle=self.handle or "",
                worker_id=self._worker_id,
                fresh_session=fresh,
            )
        else:
            await self._facts.report(
                GeminiSessionOpened, session_id=None, model=model, worker_id=self._worker_id
            )

    async def updated(self, handle: str) -> None:
        self.handle = handle
        await self._facts.report(ResumptionHandleUpdated, handle=handle)

    async def closed(self, reason: str, code: int | None) -> None:
        await self._facts.report(
            GeminiSessionClosed, reason=reason, resumption_handle=self.handle, close_code=code
        )

    def went_away(self, *, early: bool) -> bool:
        """A planned reconnect (goAway); True when the call should give up rather than reconnect.

        An early goAway (soon after its connection opened, before an exchange with the caller)
        counts as a failure, so a server sending goAway after goAway gets the back-off and,
        after ``max_reconnects`` in a row, the goodbye; any other starts a new count.
        """
        if not early:
            self._failures = 0
            return False
        self._failures += 1
        return self._failures > self._max_reconnects

    def healthy(self) -> None:
        """The connection completed a turn with the caller heard (not merely the answer to our
        own prompt): failures counted before it are no longer in a row.

        Without this, ``max_reconnects`` capped the whole call, and its back-off kept growing.
        A connection that fails before such a turn keeps the count going.
        """
        self._failures = 0

    def caller_arrived(self) -> None:
        """The pre-warmed call's stream started: the caller gets the retries a session started
        with the stream would have, whatever the model cost the session before."""
        self._failures = 0

    def failed(self, failure: ModelFailure) -> bool:
        """Count a failed connection; True when the call should give up rather than reconnect."""
        self._failures += 1
        decision = retry(
            failure, self._failures, resuming=self.handle is not None, max_reconnects=self._max_reconnects
        )
        if decision.drop_handle:
            self.handle = None  # a fresh session, primed with the transcript
        return decision.give_up

    @property
    def backoff_s(self) -> float:
        return backoff_s(self._failures)
