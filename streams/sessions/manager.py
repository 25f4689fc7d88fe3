"""Keeps exactly one session task per live call this worker owns; restarts them after failover."""

from __future__ import annotations

import asyncio
import logging
import time

from streams.calls.state import CallState
from streams.sessions.directory import AgentDirectory
from streams.sessions.facts import FactSink
from streams.sessions.live_config import DEFAULT_CONFIG, SessionPlan
from streams.sessions.session import CallSession, LiveConnector, SessionOutcome, SessionTarget
from streams.sessions.tools import ToolRunner

log = logging.getLogger(__name__)


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
    ) -> None:
        self._directory = directory
        self._connect_live = connect_live
        self._facts = facts
        self._tools = tools
        self._worker_id = worker_id
        self._config_wait_s = config_wait_s
        self._replaced_hold_s = replaced_hold_s
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

    @property
    def active(self) -> set[str]:
        return {call_id for call_id, task in self._tasks.items() if not task.done()}

    def ensure(self, state: CallState) -> None:
        """Start a session for a live call with a media stream, unless one runs or is backing off."""
        call_id = state.call_id
        if not state.live or state.stream is None:
            self.stop(call_id)
            self._finished.pop(call_id, None)
            return
        if self._finished.get(call_id) == state.stream.bridge_token:
            return
        running = self._tasks.get(call_id)
        if running is not None and not running.done():
            session = self._sessions.get(call_id)
            if session is not None and state.voicemail_message:
                session.request_voicemail(state.voicemail_message)
            return
        if time.monotonic() < self._retry_at.get(call_id, 0.0):
            return
        self._tasks[call_id] = asyncio.create_task(self._run(state), name=f"session-{call_id}")

    def stop(self, call_id: str) -> None:
        task = self._tasks.pop(call_id, None)
        self._sessions.pop(call_id, None)
        if task is not None and not task.done():
            task.cancel()
        self._failures.pop(call_id, None)
        self._retry_at.pop(call_id, None)

    async def stop_all(self) -> None:
        tasks = list(self._tasks.values())
        for call_id in list(self._tasks):
            self.stop(call_id)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, state: CallState) -> None:
        assert state.stream is not None
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
        plan = SessionPlan(
            call_id=state.call_id,
            config=config,
            resumption_handle=state.resumption_handle,
            voicemail_message=state.voicemail_message,
        )
        target = SessionTarget(
            tenant_id=state.tenant_id,
            call_id=state.call_id,
            bridge_url=state.stream.bridge_url,
            bridge_token=state.stream.bridge_token,
            plan=plan,
            worker_id=self._worker_id,
            greet=state.resumption_handle is None and not state.session_open,
        )
        session = CallSession(target, connect_live=self._connect_live, facts=self._facts, tools=self._tools)
        self._sessions[state.call_id] = session
        log.info(
            "call %s: starting session (agent %s v%d) via %s",
            state.call_id,
            state.agent_id,
            state.agent_version,
            target.bridge_url,
        )
        try:
            outcome = await session.run()
            self._failures.pop(state.call_id, None)
            if outcome is SessionOutcome.REPLACED:
                # Another worker has the call. If the call comes back to this one (another
                # rebalance), the same token is good again: hold off for a while, then retry.
                self._retry_at[state.call_id] = time.monotonic() + self._replaced_hold_s
            else:
                self._finished[state.call_id] = state.stream.bridge_token
        except asyncio.CancelledError:
            raise
        except Exception as err:  # one call's trouble must not touch the others
            failures = self._failures.get(state.call_id, 0) + 1
            self._failures[state.call_id] = failures
            self._retry_at[state.call_id] = time.monotonic() + min(0.5 * 2**failures, 10.0)
            log.warning(
                "call %s: session failed (%s: %s); retry %d", state.call_id, type(err).__name__, err, failures
            )
