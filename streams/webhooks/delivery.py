"""Delivering one webhook: POST, retry with back-off, and a record of every attempt.

``deliver`` never raises; it runs off the call path (its own consumer and tasks), so a dead
endpoint costs retries and records, never call latency. Each attempt is bounded as a whole by
its timeout (a slow endpoint cannot hold the worker), only the status is used (the body is
never read), and a URL that cannot be parsed fails once, recorded, without retries.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from schemas.dialer import WebhookDeliveryAttempted
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, TenantId
from streams.dialer.policy import RetryPolicy
from streams.webhooks.destination import private_address
from streams.webhooks.signing import signed_json_headers, tenant_signing_key

Record = Callable[[WebhookDeliveryAttempted], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """One event for one URL."""

    tenant_id: TenantId
    agent_id: AgentId
    call_id: CallId
    url: str
    event_type: str
    payload: dict[str, Any]

    @property
    def delivery_id(self) -> str:
        return str(derive_event_id(f"{self.call_id}|{self.event_type}|{self.url}", 0, "webhook"))


async def deliver(
    hook: Webhook,
    client: httpx.AsyncClient,
    secret: str,
    policy: RetryPolicy,
    record: Record,
    timeout_s: float = 5.0,
    *,
    allow_private: bool = False,
    run: str | None = None,
) -> bool:
    """POST until a 2xx or the policy gives up; True when delivered.

    ``secret`` is the platform secret: each attempt is signed with the hook's tenant's key
    derived from it (``tenant_signing_key``, ADR 27), never with the secret itself.

    A delivery run again after a crash starts again at attempt 1, so each run has its own
    ``run`` (random unless given) in its attempts' event ids: a re-run never repeats an id
    with other content, and a re-sent record (a lost ack) still carries its own.
    """
    run = run or uuid.uuid4().hex
    body = json.dumps(
        {"id": hook.delivery_id, "type": hook.event_type, "data": hook.payload}, sort_keys=True
    ).encode()
    key = tenant_signing_key(secret, hook.tenant_id)
    for attempt in range(1, policy.max_attempts + 1):
        headers = signed_json_headers(key, body, int(time.time()))
        headers["X-Voice-Delivery"] = hook.delivery_id
        status, error, final = await _post(client, hook.url, body, headers, timeout_s, allow_private)
        ok = error is None
        now = datetime.now(UTC)
        last = ok or final or attempt >= policy.max_attempts
        retry_at = None if last else now + policy.delay(attempt)
        await record(_attempted(hook, run, attempt, now, status, error, ok, retry_at))
        if ok:
            return True
        if retry_at is None:
            return False
        await asyncio.sleep((retry_at - now) / timedelta(seconds=1))
    return False


async def _post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    allow_private: bool,
) -> tuple[int | None, str | None, bool]:
    """One POST: its status, its error (None when 2xx), and whether no retry could help."""
    if not allow_private and (address := await private_address(url)) is not None:
        # A tenant's URL must not reach the platform's own network (docs/integrators.md).
        return None, f"refused: {url} resolves to a private address ({address})", True
    try:
        # httpx's timeout bounds each socket operation, so an endpoint sending a byte at a
        # time would set its own pace; this bounds the attempt. The body is left unread.
        async with (
            asyncio.timeout(timeout_s),
            client.stream("POST", url, content=body, headers=headers, timeout=timeout_s) as response,
        ):
            status = response.status_code
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        # InvalidURL is no httpx.HTTPError; the URL will not parse any better next time.
        return None, _describe(exc), True
    except (TimeoutError, httpx.TimeoutException) as exc:
        return None, f"timed out after {timeout_s:g}s ({type(exc).__name__})", False
    except httpx.HTTPError as exc:
        return None, _describe(exc), False
    return status, None if 200 <= status < 300 else f"HTTP {status}", False


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _attempted(
    hook: Webhook,
    run: str,
    attempt: int,
    now: datetime,
    status: int | None,
    error: str | None,
    ok: bool,
    retry_at: datetime | None,
) -> WebhookDeliveryAttempted:
    return WebhookDeliveryAttempted(
        tenant_id=hook.tenant_id,
        call_id=hook.call_id,
        seq=attempt,
        event_id=derive_event_id(f"{hook.delivery_id}:{run}", attempt, "webhook.attempt"),
        occurred_at=now,
        correlation_id=CorrelationId(hook.call_id),
        agent_id=hook.agent_id,
        delivery_id=hook.delivery_id,
        url=hook.url,
        event_type=hook.event_type,
        attempt=attempt,
        status_code=status,
        error=error,
        succeeded=ok,
        next_attempt_at=retry_at,
    )
