"""The agent decider: commands on one agent to events, with optimistic concurrency on the version."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict, assert_never

from schemas.agents import (
    AgentArchived,
    AgentCommand,
    AgentCommandRejected,
    AgentCreated,
    AgentEvent,
    AgentVersionPublished,
    ArchiveAgent,
    CreateAgent,
    PublishAgentVersion,
)
from schemas.avro_schema import full_name
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CorrelationId, EventId, TenantId
from streams.writers.agent_rules import config_errors
from streams.writers.recent import remember


class _Envelope(TypedDict):
    tenant_id: TenantId
    agent_id: AgentId
    seq: int
    event_id: EventId
    occurred_at: datetime
    correlation_id: CorrelationId


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentState:
    """What the writer knows of one agent."""

    agent_id: AgentId
    tenant_id: TenantId | None = None
    version: int = 0
    archived: bool = False
    seq: int = 0
    handled: tuple[str, ...] = ()
    """Correlation ids of the latest commands decided, oldest first: a re-delivered one is a no-op
    (``recent.remember``)."""

    @property
    def exists(self) -> bool:
        return self.tenant_id is not None


def initial_state(agent_id: AgentId) -> AgentState:
    return AgentState(agent_id=agent_id)


def evolve(state: AgentState, event: AgentEvent) -> AgentState:
    state = dataclasses.replace(state, seq=event.seq, handled=remember(state.handled, event.correlation_id))
    match event:
        case AgentCreated():
            return dataclasses.replace(state, tenant_id=event.tenant_id)
        case AgentVersionPublished():
            return dataclasses.replace(state, version=event.version)
        case AgentArchived():
            return dataclasses.replace(state, archived=True)
        case AgentCommandRejected():
            return state
        case _:
            assert_never(event)


def fold(state: AgentState, events: list[AgentEvent]) -> AgentState:
    for event in events:
        state = evolve(state, event)
    return state


def decide(state: AgentState, command: AgentCommand) -> list[AgentEvent]:
    """The events ``command`` causes; deterministic, so a re-run emits identical events."""
    if command.correlation_id in state.handled:
        return []
    if state.exists and command.tenant_id != state.tenant_id:
        return [_rejected(state, command, "not_found", "no such agent")]
    match command:
        case CreateAgent():
            if state.exists:
                return [_rejected(state, command, "already_exists", "the agent already exists")]
            return [
                AgentCreated(**_envelope(state, command), name=command.name, created_by=command.created_by)
            ]
        case PublishAgentVersion():
            problem = _publish_problem(state, command)
            if problem is not None:
                return [_rejected(state, command, *problem)]
            version = state.version + 1
            return [
                AgentVersionPublished(**_envelope(state, command), version=version, config=command.config)
            ]
        case ArchiveAgent():
            problem = _precondition(state, command.expected_version)
            if problem is not None:
                return [_rejected(state, command, *problem)]
            return [AgentArchived(**_envelope(state, command), version=state.version)]
        case _:
            assert_never(command)


def _publish_problem(state: AgentState, command: PublishAgentVersion) -> tuple[str, str] | None:
    problem = _precondition(state, command.expected_version)
    if problem is not None:
        return problem
    errors = config_errors(command.config)
    if errors:
        return "invalid", "; ".join(f"{path}: {message}" for path, message in errors)
    return None


def _precondition(state: AgentState, expected_version: int) -> tuple[str, str] | None:
    if not state.exists:
        return "not_found", "no such agent"
    if state.archived:
        return "archived", "the agent is archived"
    if expected_version != state.version:
        return "version_conflict", f"expected version {expected_version}, current is {state.version}"
    return None


def _envelope(state: AgentState, command: AgentCommand) -> _Envelope:
    seq = state.seq + 1
    return {
        "tenant_id": command.tenant_id,
        "agent_id": state.agent_id,
        "seq": seq,
        "event_id": derive_event_id(state.agent_id, seq),
        "occurred_at": command.occurred_at,
        "correlation_id": command.correlation_id,
    }


def _rejected(state: AgentState, command: AgentCommand, code: str, reason: str) -> AgentCommandRejected:
    envelope = _envelope(state, command)
    if state.tenant_id is not None:
        envelope["tenant_id"] = state.tenant_id
    return AgentCommandRejected(
        **envelope,
        command_type=full_name(type(command)),
        code=code,
        reason=reason,
        rejected_event_id=command.event_id,
    )
