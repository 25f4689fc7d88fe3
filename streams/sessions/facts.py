"""Builds the facts a session worker reports about one call (the sender's own numbering)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from schemas.calls import CallInput
from schemas.ids import CallId, CorrelationId, EventId, TenantId

log = logging.getLogger(__name__)

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


class FactSink(Protocol):
    """Where session facts go: the call inputs topic (a fake in unit tests)."""

    async def publish(self, record: CallInput, *, wait: bool = False) -> None:
        """Send a fact; with wait, return only once the broker has acknowledged it."""
        ...


class Reporter:
    """Stamps one call's facts and publishes them; a failed publish is logged, never raised."""

    def __init__(self, sink: FactSink, tenant_id: str, call_id: str) -> None:
        self._sink = sink
        self._make = FactFactory(tenant_id, call_id)

    async def report(self, cls: type[CallInput], /, *, wait: bool = False, **fields: Any) -> None:
        record = self._make.make(cls, **fields)
        try:
            await self._sink.publish(record, wait=wait)
        except Exception:  # the conversation must go on even when the broker is away
            log.exception("call %s: could not publish %s", self._make.call_id, type(record).__name__)
