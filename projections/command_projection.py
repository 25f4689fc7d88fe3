"""The shape of a command aggregate's projection: its rows from each event, then the command's outcome."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar, Generic, Protocol, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from projections.command_result import record_result
from projections.runner import UnappliableError
from schemas.registry import Record


class CommandEvent(Protocol):
    """What every event of a command aggregate carries (the envelope)."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def correlation_id(self) -> str: ...


class Rejection(Protocol):
    """The event a refused command leaves."""

    @property
    def code(self) -> str: ...
    @property
    def reason(self) -> str: ...


E = TypeVar("E", bound=CommandEvent)


class CommandProjection(ABC, Generic[E]):
    """Takes only its aggregate's events; after applying one, records whether its command was applied."""

    kind: ClassVar[str]
    """The aggregate with its article, as in "X is not an agent event"."""
    event_types: ClassVar[tuple[type, ...]]
    rejection: ClassVar[type[Rejection]]
    tables: ClassVar[tuple[str, ...]]
    """Every table it writes, ``command_result`` included (see ``projections.replay_tables``)."""

    def __init__(self, *, name: str, topic: str) -> None:
        self.name = name
        self.topics: tuple[str, ...] = (topic,)

    @abstractmethod
    def aggregate_id(self, event: E) -> str: ...

    @abstractmethod
    async def apply_event(self, session: AsyncSession, event: E) -> None:
        """This projection's rows for one event (the outcome row is written after it)."""

    def aggregate_of(self, record: Record) -> tuple[str, int]:
        event = self._event(record)
        return self.aggregate_id(event), event.seq

    async def apply(self, session: AsyncSession, record: Record) -> None:
        event = self._event(record)
        await self.apply_event(session, event)
        rejected = event if isinstance(event, self.rejection) else None
        await record_result(
            session,
            correlation_id=event.correlation_id,
            tenant_id=event.tenant_id,
            aggregate_id=self.aggregate_id(event),
            at=event.occurred_at,
            code=rejected.code if rejected else None,
            reason=rejected.reason if rejected else None,
        )

    async def flush(self, session: AsyncSession) -> None:
        return None

    def _event(self, record: Record) -> E:
        if not isinstance(record, self.event_types):
            raise UnappliableError(f"{type(record).__name__} is not {self.kind} event")
        return cast(E, record)
