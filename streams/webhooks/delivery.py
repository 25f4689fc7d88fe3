"""Delivering one webhook: POST, retry with back-off, and a record of every attempt.

``deliver`` never raises; it runs off the call path (its own consumer and tasks), so a dead
endpoint costs retries and records, never call latency.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from schemas.dialer import WebhookDeliveryAttempted
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, TenantId
from streams.dialer.policy import RetryPolicy
from streams.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

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
) -> bool:
    """POST until a 2xx or the policy gives up; True when delivered."""
    body = json.dumps(
        {"id": hook.delivery_id, "type": hook.event_type, "data": hook.payload}, sort_keys=True
    ).encode()
    for attempt in range(1, policy.max_attempts + 1):
        timestamp = int(time.time())
        status, error = None, None
        try:
            response = await client.post(
                hook.url,
                content=body,
                timeout=timeout_s,
                headers={
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: str(timestamp),
                    SIGNATURE_HEADER: sign(secret, timestamp, body),
                    "X-Voice-Delivery": hook.delivery_id,
                },
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        ok = error is None
        now = datetime.now(UTC)
        retry_at = None if ok or attempt >= policy.max_attempts else now + policy.delay(attempt)
        await record(_attempted(hook, attempt, now, status, error, ok, retry_at))
        if ok:
            return True
        if retry_at is None:
            return False
        await asyncio.sleep((retry_at - now) / timedelta(seconds=1))
    return False


def _attempted(
    hook: Webhook,
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
        event_id=derive_event_id(hook.delivery_id, attempt, "webhook.attempt"),
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
