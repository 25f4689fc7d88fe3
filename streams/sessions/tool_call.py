"""Answers the model's function calls on one call: runs each tool and records what happened."""

from __future__ import annotations

import asyncio
import json

from google.genai import types

from schemas.call_session import ToolCallCompleted, ToolCallFailed, ToolCallRequested
from schemas.calls import TransferRequested
from streams.sessions.conversation import Conversation
from streams.sessions.facts import Reporter
from streams.sessions.tools import ToolError, ToolRunner


class ToolCalls:
    """Runs the functions of a tool call one after another; errors go back to the model."""

    def __init__(
        self, runner: ToolRunner, facts: Reporter, *, tenant_id: str, kb_ids: tuple[str, ...]
    ) -> None:
        self._runner = runner
        self._facts = facts
        self._tenant_id = tenant_id
        self._kb_ids = kb_ids

    async def answer(
        self, call: types.LiveServerToolCall, conversation: Conversation
    ) -> list[types.FunctionResponse]:
        responses = []
        for function_call in call.function_calls or []:
            responses.append(await self._run(function_call, conversation))
        return responses

    async def _run(self, call: types.FunctionCall, conversation: Conversation) -> types.FunctionResponse:
        call_id, name, args = call.id or f"fc-{conversation.segments}", call.name or "", call.args or {}
        await self._facts.report(
            ToolCallRequested, tool_call_id=call_id, name=name, arguments_json=json.dumps(args)
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = await self._runner.run(self._tenant_id, self._kb_ids, name, args)
        except ToolError as err:
            elapsed = int((loop.time() - started) * 1000)
            await self._facts.report(
                ToolCallFailed, tool_call_id=call_id, name=name, error=str(err), duration_ms=elapsed
            )
            return types.FunctionResponse(id=call_id, name=name, response={"error": str(err)})
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
        return types.FunctionResponse(id=call_id, name=name, response=result.response)
