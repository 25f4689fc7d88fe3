"""Keeps exactly one session task per live call this worker owns; restarts them after failover."""

from __future__ import annotations

import asyncio
import logging
import time

from schemas import bridge
from streams.calls.state import SETTLING, CallState, CallStatus
from streams.sessions.directory import AgentDirectory
from streams.sessions.facts import FactSink
from streams.sessions.live_config import DEFAULT_CONFIG, SessionPlan
from streams.sessions.session import (
    LIVE_SETUP_TIMEOUT_S,
    CallSession,
    LiveConnector,
    SessionOutcome,
    SessionTarget,
)
from streams.sessions.tools import ToolRunner

log = logging.getLogger(__name__)

_MAX_UNHEARD = 10_000
_NOT_UNHEARD = object()

PREWARM_STATUSES = frozenset({CallStatus.RECEIVED})
"""A live call in these statuses without a stream yet gets its session before the stream: an
inbound call, from the voice webhook on. Not an outbound call: while it rings most would not
need one, and once it is answered the answering-machine verdict comes with the answer, so a
session opened then would greet a machine before its voicemail is known (ADR 17)."""


def carry_out(state: CallState, session: CallSession, checked_in: set[str]) -> None:
    """Pass on what the call machine decided that only the call's session can act on.

    ``checked_in`` holds the calls whose current silence already had its check-in: the state
    keeps ``silence_checked_in`` until the caller speaks, and the agent's own check-in moves its
    activity time on, so neither tells one silence from the next.
    """
    if state.status is CallStatus.ENDING:
        session.close_line(bridge.HangUp(reason=state.end_reason or "completed"))
    elif state.status is CallStatus.TRANSFERRING and state.transfer_target:
        session.close_line(bridge.Transfer(target=state.transfer_target))
    elif not state.silence_checked_in:
        checked_in.discard(state.call_id)
    elif state.call_id not in checked_in:
        checked_in.add(state.call_id)
        session.check_in()


class SessionManager:
    """The calls agent and the clock call ``ensure``; a failed session is retried with back-off."""

    def __init__(
        self,
        *,
        directory: AgentDirectory,
        connect_live: LiveConnector,
        facts: FactSink,
        tools: ToolRunner,
        worker_id: str,
        config_wait_s: float = 3.0,
        replaced_hold_s: float = 5.0,
        prewarm: bool = True,
        live_setup_timeout_s: float = LIVE_SETUP_TIMEOUT_S,
    ) -> None:
        self._directory = directory
        self._connect_live = connect_live
        self._facts = facts
        self._tools = tools
        self._worker_id = worker_id
        self._config_wait_s = config_wait_s
        self._replaced_hold_s = replaced_hold_s
        self._prewarm = prewarm
        self._live_setup_timeout_s = live_setup_timeout_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sessions: dict[str, CallSession] = {}
        """The running session of each call, to pass on what the call's state learns later."""
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._finished: dict[str, str] = {}
        """The bridge token of each call whose session is over for good: the stream ended, the
        session gave up, or the edge refused the token. A late state of the call, still live
        because its MediaStreamStopped is queued behind other inputs, must not start another
        session on a token the edge has already forgotten. A new stream brings a new token."""
        self._warmed: set[str] = set()
        """Calls whose pre-warmed session ended before their stream started: not warmed again;
        the stream, when it comes, gets a session of its own."""
        self._unheard: dict[str, str | None] = {}
        """Calls whose pre-warmed session stopped before reaching the caller, with the handle it
        left: while the call's state still holds that handle (or none), the stream's session
        starts fresh and greets rather than resume it. A newer handle means the call went on
        elsewhere (another worker had it), and is resumed as usual."""
        self._checked_in: set[str] = set()
        """Calls whose current silence has had its check-in passed to the session."""
        self._newer: dict[str, CallState] = {}
        """The latest state of each call whose session task is still waiting for the agent's
        config: a stream that starts meanwhile has no session to attach to yet, and the task
        takes it from here once the config is in, rather than at the clock's next tick."""

    @property
    def active(self) -> set[str]:
        return {call_id for call_id, task in self._tasks.items() if not task.done()}

    def ensure(self, state: CallState) -> None:
        """Keep the call's session as its state asks: started before the stream (pre-warm) or
        with it, attached to the stream's bridge, stopped once the call is over."""
        call_id = state.call_id
        if not state.live:
            self.stop(call_id)
            self._checked_in.discard(call_id)
            self._finished.pop(call_id, None)
            self._warmed.discard(call_id)
            self._unheard.pop(call_id, None)
            return
        stream = state.stream
        if stream is None:
            if self._should_prewarm(state):
                self._start(state)
            return
        if self._finished.get(call_id) == stream.bridge_token:
            return
        session = self._sessions.get(call_id)
        if session is not None and self._running(call_id):
            session.attach(stream.bridge_url, stream.bridge_token)  # a pre-warmed session's stream
            if state.voicemail_message:
                session.request_voicemail(state.voicemail_message)
            carry_out(state, session, self._checked_in)
            return
        if session is None and self._running(call_id):
            self._newer[call_id] = state  # its task is still waiting for the agent's config
            return
        self._start(state)

    def _should_prewarm(self, state: CallState) -> bool:
        return (
            self._prewarm
            and state.status in PREWARM_STATUSES
            and state.call_id not in self._warmed
            and not self._running(state.call_id)
        )

    def _running(self, call_id: str) -> bool:
        task = self._tasks.get(call_id)
        return task is not None and not task.done()

    def _start(self, state: CallState) -> None:
        if self._running(state.call_id) or time.monotonic() < self._retry_at.get(state.call_id, 0.0):
            return
        self._tasks[state.call_id] = asyncio.create_task(self._run(state), name=f"session-{state.call_id}")

    def stop(self, call_id: str) -> None:
        self._newer.pop(call_id, None)
        task = self._tasks.pop(call_id, None)
        session = self._sessions.pop(call_id, None)
        if task is not None and not task.done():
            task.cancel()
            if session is not None and not session.reached_caller:
                self._mark_unheard(call_id, session)  # a revocation stopped it; it may come back
        self._failures.pop(call_id, None)
        self._retry_at.pop(call_id, None)

    def _mark_unheard(self, call_id: str, session: CallSession) -> None:
        self._unheard[call_id] = session.resumption_handle
        while len(self._unheard) > _MAX_UNHEARD:  # calls that ended on other workers, oldest first
            del self._unheard[next(iter(self._unheard))]

    async def stop_all(self) -> None:
        tasks = list(self._tasks.values())
        for call_id in list(self._tasks):
            self.stop(call_id)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, state: CallState) -> None:
        config = self._directory.get(state.agent_id, state.agent_version)
        if config is None:
            config = await self._directory.wait_for(state.agent_id, state.agent_version, self._config_wait_s)
        if config is None:
            log.warning(
                "call %s: agent %s v%d unknown; using the default config",
                state.call_id,
                state.agent_id,
                state.agent_version,
            )
            config = DEFAULT_CONFIG
        state = self._newer.pop(state.call_id, state)  # a stream may have started meanwhile
        stream = state.stream
        # A session that starts fresh and greets: one pre-warmed (no stream yet: the caller has
        # heard nothing), or the first with a stream after this worker's pre-warmed session of
        # the call stopped unheard (a revocation), whatever handle that session left behind.
        warm = stream is None
        left = self._unheard.pop(state.call_id, _NOT_UNHEARD)
        unheard = not warm and left is not _NOT_UNHEARD and state.resumption_handle in (None, left)
        fresh = warm or unheard
        handle = None if fresh else state.resumption_handle
        plan = SessionPlan(
            call_id=state.call_id,
            config=config,
            variables=dict(state.variables),
            resumption_handle=handle,
            voicemail_message=state.voicemail_message,
            call_transcript=state.transcript_tail,
            segments_so_far=state.transcript_segments,
            utterances_so_far=state.agent_utterances,
        )
        target = SessionTarget(
            tenant_id=state.tenant_id,
            agent_id=state.agent_id,
            call_id=state.call_id,
            bridge_url=None if stream is None else stream.bridge_url,
            bridge_token=None if stream is None else stream.bridge_token,
            plan=plan,
            worker_id=self._worker_id,
            # ...and one that takes over a call whose caller has heard nothing yet: the greeting
            # of a session pre-warmed on another worker may never have been played.
            greet=state.status not in SETTLING  # being hung up or transferred: no greeting
            and (fresh or (handle is None and not state.session_open) or not state.agent_heard),
        )
        session = CallSession(
            target,
            connect_live=self._connect_live,
            facts=self._facts,
            tools=self._tools,
            setup_timeout_s=self._live_setup_timeout_s,
        )
        self._sessions[state.call_id] = session
        # A state that arrived before this session existed (a takeover that first sees the call
        # ENDING, a state parked while the config was awaited) is acted on now, not at the next.
        carry_out(state, session, self._checked_in)
        log.info(
            "call %s: starting session (agent %s v%d) %s",
            state.call_id,
            state.agent_id,
            state.agent_version,
            "before its stream (pre-warm)" if stream is None else f"via {stream.bridge_url}",
        )
        try:
            outcome = await session.run()
            self._failures.pop(state.call_id, None)
            token = session.bridge_token
            if outcome is SessionOutcome.REPLACED:
                # Another worker has the call. If the call comes back to this one (another
                # rebalance), the same token is good again: hold off for a while, then retry.
                self._retry_at[state.call_id] = time.monotonic() + self._replaced_hold_s
            elif token is None:  # a pre-warmed session that ended (gave up) before its stream
                self._warmed.add(state.call_id)
                self._mark_unheard(state.call_id, session)
            else:
                self._finished[state.call_id] = token
        except asyncio.CancelledError:
            raise
        except Exception as err:  # one call's trouble must not touch the others
            failures = self._failures.get(state.call_id, 0) + 1
            self._failures[state.call_id] = failures
            self._retry_at[state.call_id] = time.monotonic() + min(0.5 * 2**failures, 10.0)
            log.warning(
                "call %s: session failed (%s: %s); retry %d", state.call_id, type(err).__name__, err, failures
            )
            if not session.reached_caller:
                self._mark_unheard(state.call_id, session)
        finally:
            if self._sessions.get(state.call_id) is session:
                del self._sessions[state.call_id]  # never attach a stream to a session that is over
