"""Runs the tools a model calls during a call: the built-ins (knowledge, end, transfer) and webhooks."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from infra.json_depth import nesting_depth_exceeds
from schemas.agents import AgentConfig, ToolSpec
from streams.sessions.live_config import END_CALL, SEARCH_KNOWLEDGE, TRANSFER_CALL
from streams.sessions.webhook_tool import (
    ToolInvocation,
    WebhookToolError,
    call_webhook,
    missing_arguments,
)

MAX_ANSWER_DEPTH = 32
"""Nesting of a tool's answer; far beyond any useful answer, far below the recursion limit."""

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


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolContext:
    """The call a tool runs for: who asks, and the agent version's tools and knowledge."""

    tenant_id: str
    agent_id: str
    call_id: str
    config: AgentConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookTools:
    """How this worker calls agents' webhook tools: one pooled client, the signing secret."""

    client: httpx.AsyncClient
    secret: str
    allow_private: bool
    """Whether a tool URL may resolve to a loopback or private address (dev and tests only)."""


class ToolRunner:
    """Dispatches a function call by name, with a time limit; never raises anything but ToolError."""

    def __init__(
        self, search: KnowledgeSearch | None, timeout_s: float = 5.0, webhooks: WebhookTools | None = None
    ) -> None:
        self._search = search
        self._timeout_s = timeout_s
        self._webhooks = webhooks

    async def run(
        self, context: ToolContext, tool_call_id: str, name: str, args: dict[str, Any]
    ) -> ToolResult:
        kb_ids = context.config.knowledge_base_ids
        handlers: dict[str, Callable[[], Awaitable[ToolResult]]] = {
            SEARCH_KNOWLEDGE: lambda: self._search_knowledge(context.tenant_id, kb_ids, args),
            END_CALL: lambda: _end_call(args),
            TRANSFER_CALL: lambda: _transfer(context.config.transfer_numbers, args),
        }
        timeout_s = self._timeout_s
        handler = handlers.get(name)
        if handler is None:
            spec = _webhook_spec(context, name, args)
            invocation = ToolInvocation(
                tenant_id=context.tenant_id,
                agent_id=context.agent_id,
                call_id=context.call_id,
                tool_call_id=tool_call_id,
                name=name,
                arguments=args,
            )
            handler = partial(self._webhook, spec, invocation)
            timeout_s = spec.timeout_ms / 1000 + 1.0  # the request bounds itself; this is a backstop
        try:
            result = await asyncio.wait_for(handler(), timeout_s)
        except TimeoutError as err:
            raise ToolError(f"{name} timed out after {timeout_s:g}s") from err
        except ToolError:
            raise
        except Exception as err:  # a broken tool must not end the call
            raise ToolError(f"{name} failed: {type(err).__name__}: {err}") from err
        try:
            json.dumps(result.response)
        except (TypeError, ValueError) as err:
            raise ToolError(f"{name} returned something that is not JSON: {err}") from err
        if nesting_depth_exceeds(result.response, MAX_ANSWER_DEPTH):
            # google-genai recurses through the answer when it sends it: deep enough, and the
            # send itself fails, after the tool was recorded as answered.
            raise ToolError(f"{name} answered with JSON nested more than {MAX_ANSWER_DEPTH} levels deep")
        return result

    async def _webhook(self, spec: ToolSpec, invocation: ToolInvocation) -> ToolResult:
        hooks = self._webhooks
        if hooks is None:
            raise ToolError(f"{invocation.name}: webhook tools are not enabled on this worker")
        try:
            answer = await call_webhook(
                hooks.client, spec, invocation, secret=hooks.secret, allow_private=hooks.allow_private
            )
        except WebhookToolError as err:
            raise ToolError(f"{invocation.name}: {err}") from err
        return ToolResult(answer)

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


def _webhook_spec(context: ToolContext, name: str, args: dict[str, Any]) -> ToolSpec:
    """The agent's webhook tool called ``name``, if the model's arguments are complete for it."""
    spec = next((t for t in context.config.tools if t.name == name and t.webhook_url), None)
    if spec is None:
        raise ToolError(f"no handler for tool {name!r} on this platform")
    missing = missing_arguments(spec, args)
    if missing:
        raise ToolError(f"{name} needs the argument(s): {', '.join(missing)}")
    return spec


def _plain(snippet: object) -> str:
    # The read side highlights matches for people (<mark>); the model reads plain text.
    return re.sub(r"</?mark>", "", str(snippet or ""))


async def _end_call(args: dict[str, Any]) -> ToolResult:
    reason = args.get("reason")
    return ToolResult({"ok": True}, hang_up_reason=str(reason) if reason else "agent_hung_up")


async def _transfer(allowed: tuple[str, ...], args: dict[str, Any]) -> ToolResult:
    """Transfer only to one of the agent's transfer_numbers, whatever the model sends.

    The declaration limits the target to them (live_config.transfer_spec), but a model can be
    talked into anything: a caller must not get a premium-rate or international number dialled at
    the platform's cost, nor hand Twilio a <Dial> of their making.
    """
    if not allowed:
        raise ToolError("transfer_call: this agent has no transfer numbers; it cannot transfer calls")
    target = args.get("target")
    if not isinstance(target, str) or not target:
        raise ToolError("transfer_call needs a 'target': one of " + ", ".join(allowed))
    if target not in allowed:
        raise ToolError(
            f"transfer_call: {target[:40]!r} is not one of this agent's transfer numbers; "
            "the target must be one of " + ", ".join(allowed)
        )
    return ToolResult({"ok": True, "transferring_to": target}, transfer_target=target)
