"""The agent and knowledge projections take only their own events and record each command's outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from projections.agent_projection import AgentProjection
from projections.knowledge_projection import KnowledgeProjection
from projections.runner import UnappliableError
from schemas.agents import AgentArchived, AgentCommandRejected
from schemas.ids import AgentId, CorrelationId, EventId, KnowledgeBaseId, TenantId
from schemas.knowledge import KnowledgeBaseCreated

NOW = datetime(2026, 11, 26, tzinfo=UTC)
ENVELOPE: dict[str, Any] = {
    "tenant_id": TenantId("t1"),
    "seq": 3,
    "event_id": EventId("e1"),
    "occurred_at": NOW,
    "correlation_id": CorrelationId("cmd_1"),
}


class FakeResult:
    rowcount = 1


class FakeSession:
    """Keeps the parameters of each statement; every UPDATE finds one row."""

    def __init__(self) -> None:
        self.tables: list[str] = []
        self.params: list[dict[str, Any]] = []

    async def execute(self, statement: Any) -> FakeResult:
        self.tables.append(statement.table.name)
        self.params.append(statement.compile().params)
        return FakeResult()


def test_each_projection_keys_its_events_by_their_aggregate() -> None:
    archived = AgentArchived(**ENVELOPE, agent_id=AgentId("agt_1"), version=2)
    created = KnowledgeBaseCreated(**ENVELOPE, kb_id=KnowledgeBaseId("kb_1"), name="Docs")
    assert AgentProjection().aggregate_of(archived) == ("agt_1", 3)
    assert KnowledgeProjection().aggregate_of(created) == ("kb_1", 3)


async def test_a_projection_refuses_another_aggregates_event() -> None:
    created = KnowledgeBaseCreated(**ENVELOPE, kb_id=KnowledgeBaseId("kb_1"), name="Docs")
    with pytest.raises(UnappliableError, match="KnowledgeBaseCreated is not an agent event"):
        AgentProjection().aggregate_of(created)
    with pytest.raises(UnappliableError, match="is not an agent event"):
        await AgentProjection().apply(_session(FakeSession()), created)
    archived = AgentArchived(**ENVELOPE, agent_id=AgentId("agt_1"), version=2)
    with pytest.raises(UnappliableError, match="AgentArchived is not a knowledge event"):
        KnowledgeProjection().aggregate_of(archived)


async def test_an_applied_event_records_its_command_as_applied_after_its_rows() -> None:
    session = FakeSession()
    await KnowledgeProjection().apply(
        _session(session), KnowledgeBaseCreated(**ENVELOPE, kb_id=KnowledgeBaseId("kb_1"), name="Docs")
    )
    assert session.tables == ["knowledge_base", "command_result"]
    assert _outcome(session.params[-1]) == ("cmd_1", "t1", "kb_1", "applied", None, None)


async def test_a_rejection_records_its_code_and_reason() -> None:
    session = FakeSession()
    rejected = AgentCommandRejected(
        **ENVELOPE, agent_id=AgentId("agt_1"), command_type="x", code="archived", reason="it is archived"
    )
    await AgentProjection().apply(_session(session), rejected)
    assert session.tables == ["command_result"]
    assert _outcome(session.params[-1]) == ("cmd_1", "t1", "agt_1", "rejected", "archived", "it is archived")


def _outcome(params: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("correlation_id", "tenant_id", "aggregate_id", "status", "code", "reason")
    return tuple(params[k] for k in keys)


def _session(fake: FakeSession) -> AsyncSession:
    return fake  # type: ignore[return-value]
