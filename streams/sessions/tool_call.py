"""Answers the model's function calls on one call: runs each tool off the audio path, records it.

Each function call runs in its own task, so the model's audio, transcripts and interruptions
keep flowing while a webhook takes its time, and a ``toolCallCancellation`` (the caller spoke
over the question) can stop the tools it names: they are recorded as failed, and no answer is
sent for them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from google.genai import types

from schemas.call_session import ToolCallCompleted, ToolCallFailed, ToolCallRequested
from schemas.calls import TransferRequested
from streams.sessions.conversation import Conversation
from streams.sessions.facts import Reporter
from streams.sessions.tools import ToolContext, ToolError, ToolRunner

log = logging.getLogger(__name__)

Respond = Callable[[types.FunctionResponse], Awaitable[None]]
"""Sends one function's answer to the Live session it was asked on."""


@dataclass(frozen=True, slots=True)
class _Running:
    task: asyncio.Task[None]
    call_id: str
    """The model's id for the call; the model may repeat one, so entries are kept by serial."""
    name: str
    started: float


class ToolCalls:
    """The call's running tools; errors go back to the model."""

    def __init__(self, runner: ToolRunner, facts: Reporter, context: ToolContext) -> None:
        self._runner = runner
        self._facts = facts
        self._context = context
        self._running: dict[int, _Running] = {}
        self._serials = itertools.count()

    @property
    def running(self) -> frozenset[str]:
        """The model's ids of the tools still running (for tests and logs)."""
        return frozenset(entry.call_id for entry in self._running.values())

    async def start(
        self, call: types.LiveServerToolCall, conversation: Conversation, respond: Respond
    ) -> None:
        """Record each requested function and start running it; returns without waiting for it."""
        loop = asyncio.get_running_loop()
        for function_call in call.function_calls or []:
            serial = next(self._serials)
            call_id = function_call.id or f"fc-{serial}"
            name, args = function_call.name or "", dict(function_call.args or {})
            await self._facts.report(
                ToolCallRequested, tool_call_id=call_id, name=name, arguments_json=json.dumps(args)
            )
            task = loop.create_task(self._run(serial, call_id, name, args, conversation, respond))
            self._running[serial] = _Running(task, call_id, name, loop.time())
            task.add_done_callback(self._forget(serial))

    def _forget(self, serial: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._running.pop(serial, None)

        return forget

    async def cancel(self, ids: Iterable[str], reason: str) -> None:
        """Stop the named tools (those still running) and record each as failed for ``reason``."""
        wanted = set(ids)
        await self._stop([s for s, entry in self._running.items() if entry.call_id in wanted], reason)

    async def close(self, reason: str) -> None:
        """The Live connection is going away: its tools' answers have nowhere to go."""
        await self._stop(list(self._running), reason)

    async def _stop(self, serials: list[int], reason: str) -> None:
        loop = asyncio.get_running_loop()
        for serial in serials:
            entry = self._running.pop(serial, None)
            if entry is None:
                continue  # it finished meanwhile, and recorded its own outcome
            entry.task.cancel()
            # wait(), not await: a CancelledError aimed at *this* task must not be taken for the
            # tool's own and swallowed (the session would never stop).
            await asyncio.wait({entry.task})
            if not entry.task.cancelled():
                continue  # it finished in the same instant, and recorded its own outcome
            await self._facts.report(
                ToolCallFailed,
                tool_call_id=entry.call_id,
                name=entry.name,
                error=f"cancelled: {reason}",
                duration_ms=int((loop.time() - entry.started) * 1000),
            )

    async def _run(
        self,
        serial: int,
        call_id: str,
        name: str,
        args: dict[str, object],
        conversation: Conversation,
        respond: Respond,
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = await self._runner.run(self._context, call_id, name, dict(args))
        except ToolError as err:
            self._running.pop(serial, None)  # done: a cancellation now would record it twice
            elapsed = int((loop.time() - started) * 1000)
            await self._facts.report(
                ToolCallFailed, tool_call_id=call_id, name=name, error=str(err), duration_ms=elapsed
            )
            error = types.FunctionResponse(id=call_id, name=name, response={"error": str(err)})
            await self._respond(respond, error)
            return
        self._running.pop(serial, None)
        elapsed = int((loop.time() - started) * 1000)
        await self._facts.report(
            ToolCallCompleted,
            tool_call_id=call_id,
            name=name,
            result_json=json.dumps(result.response),
            duration_ms=elapsed,
        )
        # Before the answer (the turn speaking now is not the goodbye) and before the fact (the
        # call machine's transfer may reach the session at once, and must find the goodbye owed).
        if result.hang_up_reason is not None:
            conversation.hang_up_after_goodbye(result.hang_up_reason)
        if result.transfer_target is not None:
            conversation.transfer_after_goodbye()
            await self._facts.report(TransferRequested, target=result.transfer_target, reason=None)
        await self._respond(respond, types.FunctionResponse(id=call_id, name=name, response=result.response))

    async def _respond(self, respond: Respond, response: types.FunctionResponse) -> None:
        try:
            await respond(response)
        except Exception as err:  # the connection closed meanwhile; the outcome is recorded
            log.warning("tool %s answered after its Live connection closed: %s", response.name, err)
