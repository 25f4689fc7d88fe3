"""Resolve the broker and database: the external ones from settings, or start embedded ones."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from infra.embedded import EmbeddedService, start_broker, start_postgres
from infra.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Stack:
    """The settings with real addresses filled in, and the embedded services we own."""

    settings: Settings
    services: list[EmbeddedService] = field(default_factory=list)

    def stop(self) -> None:
        for service in reversed(self.services):
            log.info("stopping embedded %s (pid %d)", service.name, service.pid)
            service.stop()
        self.services.clear()


def start_stack(settings: Settings, *, durable: bool = True) -> Stack:
    """Start whatever settings leave unconfigured; return settings that point at it."""
    services: list[EmbeddedService] = []
    kafka, database = settings.kafka, settings.database
    data_dir = settings.data_dir.resolve()
    try:
        if settings.uses_embedded_broker:
            broker = start_broker(data_dir)
            services.append(broker)
            kafka = kafka.model_copy(update={"bootstrap": broker.address})
        if settings.uses_embedded_database:
            postgres = start_postgres(data_dir, durable=durable)
            services.append(postgres)
            database = database.model_copy(update={"url": postgres.address})
    except BaseException:
        Stack(settings, services).stop()
        raise
    resolved = settings.model_copy(update={"kafka": kafka, "database": database})
    return Stack(resolved, services)


@contextmanager
def running_stack(settings: Settings, *, durable: bool = True) -> Iterator[Stack]:
    """Context manager form of start_stack that always stops what it started."""
    stack = start_stack(settings, durable=durable)
    try:
        yield stack
    finally:
        stack.stop()


def require(value: str | None, name: str) -> str:
    """An address that must be resolved by now, with a message naming the setting."""
    if value is None:
        raise RuntimeError(f"{name} is not set and no embedded service was started")
    return value
