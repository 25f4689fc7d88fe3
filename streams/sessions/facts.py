"""Builds the facts a session worker reports about one call (the sender's own numbering)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from schemas.ids import CallId, CorrelationId, EventId, TenantId

R = TypeVar("R")


class FactFactory:
    """Stamps facts with the call's envelope; ``seq`` is this sender's own per-call counter."""

    def __init__(
        self,
        tenant_id: str,
        call_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tenant_id = TenantId(tenant_id)
        self.call_id = CallId(call_id)
        self._clock = clock
        self._seq = 0

    def make(self, cls: type[R], **fields: Any) -> R:
        self._seq += 1
        build: Callable[..., R] = cls
        return build(
            tenant_id=self.tenant_id,
            call_id=self.call_id,
            seq=self._seq,
            event_id=EventId(str(uuid.uuid4())),
            occurred_at=self._clock(),
            correlation_id=CorrelationId(self.call_id),
            **fields,
        )
