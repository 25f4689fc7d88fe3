"""/api/agents: agents with immutable versions (ETag / If-Match is the current version)."""

from __future__ import annotations

from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, Path, Query, Response

from api import store
from api.agent_models import (
    MAX_VERSION,
    AgentConfigIn,
    AgentCreate,
    AgentDiff,
    AgentPublic,
    AgentsPublic,
    AgentVersionPublic,
    Change,
    Rollback,
    VersionCreate,
)
from api.agent_versions import config_diff, config_input, etag, expected_version
from api.command_http import envelope, settle
from api.commands import new_id
from api.deps import Admin, ContextDep, SessionDep, Viewer
from api.problems import ProblemError, event_log_refused, field_errors
from projections import queries
from schemas.agents import AgentConfig, ArchiveAgent, CreateAgent, PublishAgentVersion
from schemas.ids import AgentId
from streams.writers.agent_rules import config_errors

router = APIRouter(prefix="/api/agents", tags=["agents"])

REJECTION_STATUS = {
    "not_found": 404,
    "version_conflict": 412,
    "already_exists": 409,
    "archived": 409,
    "invalid": 422,
}


async def _numbers_free(session: SessionDep, principal: Viewer, agent_id: str, config: AgentConfig) -> None:
    """409 if another active agent routes one of the config's numbers: a number reaches one agent.

    Without this, the last version published anywhere took the number, another tenant's included.
    """
    holders = await queries.phone_number_holders(session, config.phone_numbers, agent_id)
    if not holders:
        return
    taken = [
        f"{h['phone_number']} is routed to agent {h['agent_id']}"
        if h["tenant_id"] == principal.tenant_id
        else f"{h['phone_number']} is in use by another account"
        for h in holders
    ]
    raise ProblemError(409, "phone numbers already taken: " + "; ".join(taken))


def _validated(config: AgentConfigIn) -> AgentConfig:
    record = config.to_record()
    errors = config_errors(record)
    if errors:
        raise field_errors([(f"config.{path}", message) for path, message in errors])
    return record


def _envelope(principal: Viewer, agent_id: str) -> dict[str, Any]:
    return envelope(principal.tenant_id) | {"agent_id": AgentId(agent_id)}


async def _agent_public(session: SessionDep, tenant_id: str, agent_id: str) -> AgentPublic | None:
    agent = await queries.get_agent(session, tenant_id, agent_id)
    if agent is None:
        return None
    version = await queries.agent_version(session, tenant_id, agent_id, agent["current_version"])
    return AgentPublic(**agent, config=version["config"] if version else None)


@router.post("", status_code=201, response_model=AgentPublic | None)
async def create_agent(
    body: AgentCreate, principal: Admin, context: ContextDep, session: SessionDep, response: Response
) -> AgentPublic | None:
    config = _validated(body.config) if body.config is not None else None
    agent_id = new_id("agt")
    create = CreateAgent(**_envelope(principal, agent_id), name=body.name, created_by=principal.key_id)
    publish = None
    if config is not None:
        await _numbers_free(session, principal, agent_id, config)
        publish = PublishAgentVersion(**_envelope(principal, agent_id), expected_version=0, config=config)
        context.bus.encode(publish)  # an EncodeError here (a 422) leaves no agent without its version
    await context.bus.send(create)
    last = create.correlation_id
    if publish is not None:
        try:
            await context.bus.send(publish)
        except KafkaError as err:
            # The agent exists; a blind retry of this request would create a second one.
            await store.audit(session, principal, "agent.create", "agent", agent_id, correlation_id=last)
            await session.commit()
            raise event_log_refused(
                err,
                f"agent {agent_id} was created but the event log became unavailable before its first "
                f"version was written; publish it with POST /api/agents/{agent_id}/versions",
                done=f"agent {agent_id} was created but its first version was not written",
                agent_id=agent_id,
            ) from err
        last = publish.correlation_id
    await store.audit(session, principal, "agent.create", "agent", agent_id, correlation_id=last)
    await session.commit()
    location = f"/api/agents/{agent_id}"
    if not await settle(context.bus, last, response, location, REJECTION_STATUS):
        return None
    agent = await _agent_public(session, principal.tenant_id, agent_id)
    response.headers["Location"] = location
    if agent is not None:
        response.headers["ETag"] = etag(agent.current_version)
    return agent


@router.get("", response_model=AgentsPublic)
async def list_agents(
    principal: Viewer,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AgentsPublic:
    page = await _page(session, principal.tenant_id, cursor, limit)
    return AgentsPublic(items=[AgentPublic(**row) for row in page.items], next_cursor=page.next_cursor)


async def _page(session: SessionDep, tenant_id: str, cursor: str | None, limit: int) -> queries.Page:
    try:
        return await queries.list_agents(session, tenant_id, cursor=cursor, limit=limit)
    except queries.BadCursorError as err:
        raise ProblemError(400, str(err)) from err


@router.get("/{agent_id}", response_model=AgentPublic)
async def get_agent(agent_id: str, principal: Viewer, session: SessionDep, response: Response) -> AgentPublic:
    agent = await _agent_public(session, principal.tenant_id, agent_id)
    if agent is None:
        raise ProblemError(404, f"no agent {agent_id}")
    response.headers["ETag"] = etag(agent.current_version)
    return agent


@router.post("/{agent_id}/versions", status_code=201, response_model=AgentVersionPublic | None)
async def publish_version(
    agent_id: str,
    body: VersionCreate,
    principal: Admin,
    context: ContextDep,
    session: SessionDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> AgentVersionPublic | None:
    return await _publish(
        agent_id,
        _validated(body.config),
        expected_version(if_match, body.expected_version),
        principal,
        context,
        session,
        response,
    )


async def _publish(
    agent_id: str,
    config: AgentConfig,
    expected: int,
    principal: Admin,
    context: ContextDep,
    session: SessionDep,
    response: Response,
) -> AgentVersionPublic | None:
    if await queries.get_agent(session, principal.tenant_id, agent_id) is None:
        raise ProblemError(404, f"no agent {agent_id}")
    await _numbers_free(session, principal, agent_id, config)
    command = PublishAgentVersion(**_envelope(principal, agent_id), expected_version=expected, config=config)
    await context.bus.send(command)
    await store.audit(
        session, principal, "agent.publish", "agent", agent_id, correlation_id=command.correlation_id
    )
    await session.commit()
    location = f"/api/agents/{agent_id}/versions/{expected + 1}"
    if not await settle(context.bus, command.correlation_id, response, location, REJECTION_STATUS):
        return None
    version = await queries.agent_version(session, principal.tenant_id, agent_id, expected + 1)
    response.headers["Location"] = location
    response.headers["ETag"] = etag(expected + 1)
    return AgentVersionPublic(**version) if version else None


@router.get("/{agent_id}/versions", response_model=list[AgentVersionPublic])
async def list_versions(agent_id: str, principal: Viewer, session: SessionDep) -> list[AgentVersionPublic]:
    if await queries.get_agent(session, principal.tenant_id, agent_id) is None:
        raise ProblemError(404, f"no agent {agent_id}")
    return [
        AgentVersionPublic(**v) for v in await queries.agent_versions(session, principal.tenant_id, agent_id)
    ]


@router.get("/{agent_id}/versions/{version}", response_model=AgentVersionPublic)
async def get_version(
    agent_id: str, version: Annotated[int, Path(ge=1, le=MAX_VERSION)], principal: Viewer, session: SessionDep
) -> AgentVersionPublic:
    found = await queries.agent_version(session, principal.tenant_id, agent_id, version)
    if found is None:
        raise ProblemError(404, f"no version {version} of agent {agent_id}")
    return AgentVersionPublic(**found)


@router.get("/{agent_id}/diff", response_model=AgentDiff)
async def diff_versions(
    agent_id: str,
    principal: Viewer,
    session: SessionDep,
    from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_VERSION)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_VERSION)],
) -> AgentDiff:
    before = await get_version(agent_id, from_version, principal, session)
    after = await get_version(agent_id, to_version, principal, session)
    changes = [Change(path=p, before=b, after=a) for p, b, a in config_diff(before.config, after.config)]
    return AgentDiff(agent_id=agent_id, from_version=from_version, to_version=to_version, changes=changes)


@router.post("/{agent_id}/rollback", status_code=201, response_model=AgentVersionPublic | None)
async def rollback(
    agent_id: str,
    body: Rollback,
    principal: Admin,
    context: ContextDep,
    session: SessionDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> AgentVersionPublic | None:
    """Publishes the configuration of an earlier version as a new version."""
    old = await get_version(agent_id, body.to_version, principal, session)
    config = AgentConfigIn.model_validate(config_input(old.config))
    return await _publish(
        agent_id, _validated(config), expected_version(if_match, None), principal, context, session, response
    )


@router.delete("/{agent_id}", response_model=AgentPublic | None)
async def archive_agent(
    agent_id: str,
    principal: Admin,
    context: ContextDep,
    session: SessionDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> AgentPublic | None:
    agent = await queries.get_agent(session, principal.tenant_id, agent_id)
    if agent is None:
        raise ProblemError(404, f"no agent {agent_id}")
    expected = expected_version(if_match, None) if if_match is not None else agent["current_version"]
    command = ArchiveAgent(**_envelope(principal, agent_id), expected_version=expected)
    await context.bus.send(command)
    await store.audit(
        session, principal, "agent.archive", "agent", agent_id, correlation_id=command.correlation_id
    )
    await session.commit()
    location = f"/api/agents/{agent_id}"
    if not await settle(context.bus, command.correlation_id, response, location, REJECTION_STATUS):
        return None
    return await _agent_public(session, principal.tenant_id, agent_id)
