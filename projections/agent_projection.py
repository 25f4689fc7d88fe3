"""The agent projection: agent and agent_version rows, and command outcomes."""

from __future__ import annotations

from typing import get_args

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections.command_result import record_result
from projections.jsonable import to_jsonable
from projections.models import Agent, AgentVersion
from projections.runner import UnappliableError
from schemas import agents
from schemas.catalog import AGENT_EVENTS
from schemas.registry import Record

_EVENT_TYPES = get_args(agents.AgentEvent)


class AgentProjection:
    """Folds voice.agents.events.v1 into agent and agent_version."""

    def __init__(self, *, name: str = "agents", topic: str = AGENT_EVENTS.name) -> None:
        self.name = name
        self.topics: tuple[str, ...] = (topic,)

    def aggregate_of(self, record: Record) -> tuple[str, int]:
        if not isinstance(record, _EVENT_TYPES):
            raise UnappliableError(f"{type(record).__name__} is not an agent event")
        return record.agent_id, record.seq

    async def apply(self, session: AsyncSession, record: Record) -> None:
        if not isinstance(record, _EVENT_TYPES):
            raise UnappliableError(f"{type(record).__name__} is not an agent event")
        await _apply(session, record)
        rejected = isinstance(record, agents.AgentCommandRejected)
        await record_result(
            session,
            correlation_id=record.correlation_id,
            tenant_id=record.tenant_id,
            aggregate_id=record.agent_id,
            at=record.occurred_at,
            code=record.code if rejected else None,
            reason=record.reason if rejected else None,
        )

    async def flush(self, session: AsyncSession) -> None:
        return None


async def _apply(session: AsyncSession, event: agents.AgentEvent) -> None:
    at = event.occurred_at
    match event:
        case agents.AgentCreated():
            row = {
                "agent_id": event.agent_id,
                "tenant_id": event.tenant_id,
                "name": event.name,
                "created_by": event.created_by,
                "status": "active",
                "current_version": 0,
                "created_at": at,
                "updated_at": at,
            }
            await session.execute(insert(Agent).values(row).on_conflict_do_nothing())
        case agents.AgentVersionPublished():
            version = {
                "agent_id": event.agent_id,
                "version": event.version,
                "tenant_id": event.tenant_id,
                "config": to_jsonable(event.config),
                "published_at": at,
            }
            await session.execute(insert(AgentVersion).values(version).on_conflict_do_nothing())
            await _update_agent(session, event, current_version=event.version, updated_at=at)
        case agents.AgentArchived():
            await _update_agent(session, event, status="archived", updated_at=at)
        case agents.AgentCommandRejected():
            return


async def _update_agent(session: AsyncSession, event: agents.AgentEvent, **values: object) -> None:
    result = await session.execute(
        update(Agent)
        .where(Agent.agent_id == event.agent_id, Agent.tenant_id == event.tenant_id)
        .values(**values)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise UnappliableError(f"agent {event.agent_id} of tenant {event.tenant_id} does not exist")
