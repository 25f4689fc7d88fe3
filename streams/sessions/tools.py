"""Runs the tools a model calls during a call: knowledge search, end call, transfer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from streams.sessions.live_config import END_CALL, SEARCH_KNOWLEDGE, TRANSFER_CALL

KnowledgeSearch = Callable[[str, str, tuple[str, ...], int], Awaitable[list[dict[str, Any]]]]
"""(tenant_id, query, kb_ids, limit) -> ranked passages: the read side's query, or a fake."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's JSON-able answer, plus what the call must do next (hang up, transfer)."""

    response: dict[str, Any]
    hang_up_reason: str | None = None
    transfer_target: str | None = None


class ToolError(Exception):
    """A tool failed in a way the model should hear about (and the log should record)."""


class ToolRunner:
    """Dispatches a function call by name, with a time limit; never raises anything but ToolError."""

    def __init__(self, search: KnowledgeSearch | None, timeout_s: float = 5.0) -> None:
        self._search = search
        self._timeout_s = timeout_s

    async def run(
        self, tenant_id: str, kb_ids: tuple[str, ...], name: str, args: dict[str, Any]
    ) -> ToolResult:
        handlers: dict[str, Callable[[], Awaitable[ToolResult]]] = {
            SEARCH_KNOWLEDGE: lambda: self._search_knowledge(tenant_id, kb_ids, args),
            END_CALL: lambda: _end_call(args),
            TRANSFER_CALL: lambda: _transfer(args),
        }
        handler = handlers.get(name)
        if handler is None:
            raise ToolError(f"no handler for tool {name!r} on this platform")
        try:
            result = await asyncio.wait_for(handler(), self._timeout_s)
        except TimeoutError as err:
            raise ToolError(f"{name} timed out after {self._timeout_s:g}s") from err
        except ToolError:
            raise
        except Exception as err:  # a broken tool must not end the call
            raise ToolError(f"{name} failed: {type(err).__name__}: {err}") from err
        try:
            json.dumps(result.response)
        except (TypeError, ValueError) as err:
            raise ToolError(f"{name} returned something that is not JSON: {err}") from err
        return result

    async def _search_knowledge(
        self, tenant_id: str, kb_ids: tuple[str, ...], args: dict[str, Any]
    ) -> ToolResult:
        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolError("search_knowledge needs a non-empty 'query'")
        if self._search is None or not kb_ids:
            return ToolResult({"passages": [], "note": "this agent has no knowledge base"})
        rows = await self._search(tenant_id, query, kb_ids, 3)
        passages = [
            {"title": r.get("title"), "text": _plain(r.get("snippet") or r.get("text"))} for r in rows
        ]
        return ToolResult({"passages": passages})


def _plain(snippet: object) -> str:
    # The read side highlights matches for people (<mark>); the model reads plain text.
    return re.sub(r"</?mark>", "", str(snippet or ""))


async def _end_call(args: dict[str, Any]) -> ToolResult:
    reason = args.get("reason")
    return ToolResult({"ok": True}, hang_up_reason=str(reason) if reason else "agent_hung_up")


async def _transfer(args: dict[str, Any]) -> ToolResult:
    target = args.get("target")
    if not isinstance(target, str) or not target:
        raise ToolError("transfer_call needs a 'target' number")
    return ToolResult({"ok": True, "transferring_to": target}, transfer_target=target)
