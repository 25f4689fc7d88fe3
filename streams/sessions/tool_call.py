"""Answers the model's function calls on one call: runs each tool off the audio path, records it.

Each function call runs in its own task, so the model's audio, transcripts and interruptions
keep flowing while a webhook takes its time, and a ``toolCallCancellation`` (the caller spoke
over the question) can stop the tools it names: they are recorded as failed, and no answer is
sent for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable

from google.genai import types

from schemas.call_session import ToolCallCompleted, ToolCallFailed, ToolCallRequested
from schemas.calls import TransferRequested
from streams.sessions.conversation import Conversation
from streams.sessions.facts import Reporter
from streams.sessions.tools import ToolContext, ToolError, ToolRunner

log = logging.getLogger(__name__)

Respond = Callable[[types.FunctionResponse], Awaitable[None]]
"""Sends one function's answer to the Live session it was asked on."""


class ToolCalls:
    """The call's running tools, by function-call id; errors go back to the model."""

    def __init__(self, runner: ToolRunner, facts: Reporter, context: ToolContext) -> None:
        self._runner = runner
        self._facts = facts
        self._context = context
        self._running: dict[str, tuple[asyncio.Task[None], str, float]] = {}

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    async def start(
        self, call: types.LiveServerToolCall, conversation: Conversation, respond: Respond
    ) -> None:
        """Record each requested function and start running it; returns without waiting for it."""
        loop = asyncio.get_running_loop()
        for function_call in call.function_calls or []:
            call_id = function_call.id or f"fc-{conversation.segments}-{len(self._running)}"
            name, args = function_call.name or "", dict(function_call.args or {})
            await self._facts.report(
                ToolCallRequested, tool_call_id=call_id, name=name, arguments_json=json.dumps(args)
            )
            task = loop.create_task(self._run(call_id, name, args, conversation, respond))
            self._running[call_id] = (task, name, loop.time())
            task.add_done_callback(self._forget(call_id))

    def _forget(self, call_id: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._running.pop(call_id, None)

        return forget

    async def cancel(self, ids: Iterable[str], reason: str) -> None:
        """Stop the named tools (those still running) and record each as failed for ``reason``."""
        loop = asyncio.get_running_loop()
        for call_id in ids:
            entry = self._running.pop(call_id, None)
            if entry is None:
                continue  # finished already, or never ours: nothing to stop
            task, name, started = entry
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._facts.report(
                ToolCallFailed,
                tool_call_id=call_id,
                name=name,
                error=f"cancelled: {reason}",
                duration_ms=int((loop.time() - started) * 1000),
            )

    async def close(self, reason: str) -> None:
        """The Live connection is going away: its tools' answers have nowhere to go."""
        await self.cancel(list(self._running), reason)

    async def _run(
        self, call_id: str, name: str, args: dict[str, object], conversation: Conversation, respond: Respond
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = await self._runner.run(self._context, call_id, name, dict(args))
        except ToolError as err:
            self._running.pop(call_id, None)  # done: a cancellation now would record it twice
            elapsed = int((loop.time() - started) * 1000)
            await self._facts.report(
                ToolCallFailed, tool_call_id=call_id, name=name, error=str(err), duration_ms=elapsed
            )
            await self._respond(
                respond, types.FunctionResponse(id=call_id, name=name, response={"error": str(err)})
            )
            return
        self._running.pop(call_id, None)
        elapsed = int((loop.time() - started) * 1000)
        await self._facts.report(
            ToolCallCompleted,
            tool_call_id=call_id,
            name=name,
            result_json=json.dumps(result.response),
            duration_ms=elapsed,
        )
        if result.hang_up_reason is not None:
            conversation.pending_hangup = result.hang_up_reason  # after the goodbye has been spoken
        if result.transfer_target is not None:
            await self._facts.report(TransferRequested, target=result.transfer_target, reason=None)
        await self._respond(respond, types.FunctionResponse(id=call_id, name=name, response=result.response))

    async def _respond(self, respond: Respond, response: types.FunctionResponse) -> None:
        try:
            await respond(response)
        except Exception as err:  # the connection closed meanwhile; the outcome is recorded
            log.warning("tool %s answered after its Live connection closed: %s", response.name, err)
