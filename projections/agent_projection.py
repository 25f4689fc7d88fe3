"""The agent projection: agent and agent_version rows, and command outcomes."""

from __future__ import annotations

from typing import get_args

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections import command_result
from projections.command_projection import CommandProjection
from projections.jsonable import to_jsonable
from projections.models import Agent, AgentVersion
from projections.runner import UnappliableError
from schemas import agents
from schemas.catalog import AGENT_EVENTS


class AgentProjection(CommandProjection[agents.AgentEvent]):
    """Folds voice.agents.events.v1 into agent and agent_version."""

    kind = "an agent"
    event_types = get_args(agents.AgentEvent)
    rejection = agents.AgentCommandRejected
    tables = ("agent", "agent_version", command_result.TABLE)

    def __init__(self, *, name: str = "agents", topic: str = AGENT_EVENTS.name) -> None:
        super().__init__(name=name, topic=topic)

    def aggregate_id(self, event: agents.AgentEvent) -> str:
        return event.agent_id

    async def apply_event(self, session: AsyncSession, event: agents.AgentEvent) -> None:
        await _apply(session, event)


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
