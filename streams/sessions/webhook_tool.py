"""An agent's own tool: the model's arguments POSTed, HMAC-signed, to the tool's URL; its JSON back.

The request is signed with its tenant's key, derived from the platform secret
(``streams.webhooks.signing.tenant_signing_key``, ADR 27): a tenant can verify our requests to
its endpoints, and cannot sign a request to another tenant's.

The request is bounded as a whole (connect, send, every byte of the answer) by the tool's
``timeout_ms``, and the answer by ``MAX_RESPONSE_BYTES``: a slow or chatty endpoint costs the
caller a failed tool, never a stuck session. The wire format is in docs/tools.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from infra.strict_json import loads_strict
from schemas.agents import ToolSpec
from streams.webhooks.destination import private_address
from streams.webhooks.signing import signed_json_headers, tenant_signing_key

MAX_RESPONSE_BYTES = 64 * 1024
TOOL_CALL_HEADER = "X-Voice-Tool-Call"


class WebhookToolError(Exception):
    """The webhook did not give an answer the model can use; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolInvocation:
    """One call of one tool, as the endpoint is told about it."""

    tenant_id: str
    agent_id: str
    call_id: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any]

    def body(self) -> bytes:
        return json.dumps(
            {
                "tool": self.name,
                "tool_call_id": self.tool_call_id,
                "call_id": self.call_id,
                "agent_id": self.agent_id,
                "tenant_id": self.tenant_id,
                "arguments": self.arguments,
            },
            sort_keys=True,
        ).encode()


def missing_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> list[str]:
    """The schema's required arguments the model left out (checked before anything is sent)."""
    try:
        schema = json.loads(spec.parameters_json)
    except ValueError:
        return []  # validated on publish; an old version's bad schema is not the caller's problem
    required = schema.get("required", []) if isinstance(schema, dict) else []
    return [name for name in required if isinstance(name, str) and name not in arguments]


async def call_webhook(
    client: httpx.AsyncClient,
    spec: ToolSpec,
    invocation: ToolInvocation,
    *,
    secret: str,
    allow_private: bool,
) -> dict[str, Any]:
    """POST the invocation to the tool's URL; its JSON answer (an object, or wrapped in one).

    ``secret`` is the platform secret; the request is signed with the invocation's tenant's key.
    """
    url = spec.webhook_url
    if url is None:
        raise WebhookToolError(f"tool {spec.name!r} has no webhook_url")
    if not allow_private:
        address = await private_address(url)
        if address is not None:
            raise WebhookToolError(f"refused: {url} resolves to a private address ({address})")
    timeout_s = spec.timeout_ms / 1000
    try:
        async with asyncio.timeout(timeout_s):
            status, raw = await _post(client, url, invocation, secret)
    except TimeoutError as err:
        raise WebhookToolError(f"no complete answer within {timeout_s:g}s") from err
    except (httpx.HTTPError, httpx.InvalidURL) as err:
        raise WebhookToolError(f"{type(err).__name__}: {err}"[:300]) from err
    if not 200 <= status < 300:
        raise WebhookToolError(f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}")
    try:
        # Strict: a NaN passed on would make the tool response to Gemini, and the record of
        # the call for integrators, something that is not JSON.
        answer = loads_strict(raw)
    except ValueError as err:
        raise WebhookToolError(f"the answer is not JSON: {err}") from err
    return answer if isinstance(answer, dict) else {"result": answer}


async def _post(
    client: httpx.AsyncClient, url: str, invocation: ToolInvocation, secret: str
) -> tuple[int, bytes]:
    body = invocation.body()
    key = tenant_signing_key(secret, invocation.tenant_id)
    headers = signed_json_headers(key, body, int(time.time()))
    headers[TOOL_CALL_HEADER] = invocation.tool_call_id
    # Never follow a redirect: it could bounce the signed request to a private address.
    # timeout=None: the tool's own timeout bounds the whole exchange (asyncio.timeout around
    # this); httpx's default of 5 s per read would cut a tool allowed 30 s short.
    async with client.stream(
        "POST", url, content=body, headers=headers, follow_redirects=False, timeout=None
    ) as response:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise WebhookToolError(f"the answer is larger than {MAX_RESPONSE_BYTES} bytes")
            chunks.append(chunk)
        return response.status_code, b"".join(chunks)
