"""/api/campaigns: dial a list of numbers (CSV or JSON) with one agent; pause, resume, cancel, progress.

Rows are checked one by one: a bad row (not E.164, a repeat of an earlier number, variables
that are not text) is left out and reported with its row number; the others become one ``PlaceCall``
each, sent after the ``CreateCampaign`` that announces them. The dialer applies the agent's
and the tenant's limits, windows and the do-not-call list as it does for single calls.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from api import store
from api.commands import new_id, now
from api.deps import ContextDep, Operator, SessionDep, Viewer
from api.input_guard import unstorable_text
from api.problems import ProblemError, event_log_refused
from projections import dialer_queries, queries
from schemas.dialer import CancelCampaign, CreateCampaign, PauseCampaign, PlaceCall, ResumeCampaign
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CampaignId, CorrelationId, EventId, TenantId
from streams.writers.agent_rules import E164

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])

MAX_ROWS = 100_000
MAX_BODY_BYTES = 32 * 1024 * 1024
_NUMBER_COLUMNS = ("to_number", "number", "phone", "phone_number")
_SEND_CHUNK = 500


class CampaignPublic(BaseModel):
    campaign_id: str
    agent_id: str
    name: str
    status: str
    total: int
    queued: int
    dialling: int
    answered: int
    failed: int
    done: int
    created_at: datetime
    updated_at: datetime


class RowError(BaseModel):
    row: int
    value: str | None
    message: str


class CampaignCreatedPublic(BaseModel):
    campaign_id: str
    accepted: int
    rejected: int
    errors: list[RowError]
    campaign: CampaignPublic | None


@dataclass
class Rows:
    """The accepted rows (number, variables) and the per-row errors (rows count from 1)."""

    accepted: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def add(self, row: int, number: Any, variables: Any = None) -> None:
        value = number if isinstance(number, str) else None
        if value is None or not E164.fullmatch(value.strip()):
            self.errors.append(RowError(row=row, value=_shown(number), message="not an E.164 number"))
            return
        value = value.strip()
        if value in self._seen:
            self.errors.append(RowError(row=row, value=value, message="repeats an earlier row"))
            return
        if variables is not None and (
            not isinstance(variables, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items())
        ):
            self.errors.append(RowError(row=row, value=value, message="variables must map text to text"))
            return
        self._seen.add(value)
        self.accepted.append((value, dict(variables or {})))


def _shown(value: Any) -> str | None:
    return None if value is None else str(value)[:100]


def parse_csv(text: str) -> Rows:
    """A header row naming a number column (to_number, number, phone) and optional variable columns."""
    # newline="": the csv module takes \n, \r\n and a bare \r (Excel for Mac) as line ends.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _csv_rows(reader)
    except csv.Error as err:  # a cell beyond the csv module's field limit, a stray quote...
        raise ProblemError(422, f"the CSV file cannot be read: {err}") from err


def _csv_rows(reader: Any) -> Rows:
    header = next(reader, None)
    if header is None:
        raise ProblemError(422, "the CSV file is empty")
    names = [h.strip().lower() for h in header]
    number_at = next((i for i, n in enumerate(names) if n in _NUMBER_COLUMNS), None)
    rows, first = Rows(), 1
    if number_at is None:  # no header: the first column holds the numbers
        if not header or not E164.fullmatch(header[0].strip()):
            raise ProblemError(422, "the CSV header names no number column (to_number, number, phone)")
        number_at, names, first = 0, [], 2
        rows.add(1, header[0])
    for index, cells in enumerate(reader, start=first):
        _limit(index)
        if not any(c.strip() for c in cells):
            continue
        number = cells[number_at] if number_at < len(cells) else None
        variables = {
            names[i]: cells[i] for i in range(len(cells)) if i != number_at and i < len(names) and names[i]
        }
        rows.add(index, number, variables)
    return rows


def parse_json(body: Any) -> tuple[str | None, str | None, Rows]:
    """``{"agent_id", "name", "numbers": ["+1...", {"to_number": "+1...", "variables": {...}}]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("numbers"), list):
        raise ProblemError(422, "the body must be an object with a list of numbers")
    rows = Rows()
    for index, item in enumerate(body["numbers"], start=1):
        _limit(index)
        if isinstance(item, dict):
            rows.add(index, item.get("to_number"), item.get("variables"))
        else:
            rows.add(index, item)
    agent, name = body.get("agent_id"), body.get("name")
    return (agent if isinstance(agent, str) else None), (name if isinstance(name, str) else None), rows


def _limit(index: int) -> None:
    if index > MAX_ROWS:
        raise ProblemError(413, f"a campaign holds at most {MAX_ROWS} rows")


async def _read_rows(request: Request) -> tuple[str | None, str | None, Rows]:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ProblemError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    csv_body = kind in ("text/csv", "application/csv")
    # Whatever the content type says (the NUL guard in front only reads bodies labelled JSON):
    # PostgreSQL text cannot hold a NUL, so a campaign carrying one could never be shown.
    detail = unstorable_text(body, json_escapes=not csv_body)
    if detail is not None:
        raise ProblemError(422, detail)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ProblemError(422, "the body is not UTF-8 text") from err
    if csv_body:
        params = request.query_params
        return params.get("agent_id"), params.get("name"), parse_csv(text)
    try:
        # orjson, not json: it refuses what the event log could not carry or that would take
        # the parser down (a lone surrogate, a number beyond a double, nesting past 1,024).
        return parse_json(orjson.loads(text))
    except orjson.JSONDecodeError as err:
        raise ProblemError(422, f"the body is not JSON: {err}") from err


_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "required": ["agent_id", "numbers"]}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.post("", status_code=201, response_model=CampaignCreatedPublic, openapi_extra=_OPENAPI_BODY)
async def create_campaign(
    request: Request, principal: Operator, context: ContextDep, session: SessionDep, response: Response
) -> CampaignCreatedPublic:
    """JSON, or ``text/csv`` with ``?agent_id=&name=``; rows that fail are reported, not dialled."""
    agent_id, name, rows = await _read_rows(request)
    agent = await queries.get_agent(session, principal.tenant_id, agent_id) if agent_id else None
    if agent is None:
        raise ProblemError(
            422, "the request is invalid", errors=[{"field": "agent_id", "message": "no such agent"}]
        )
    if agent["status"] != "active" or agent["current_version"] < 1:
        raise ProblemError(409, "the agent is archived or has no published version")
    if not rows.accepted:
        raise ProblemError(422, "no row holds a number to dial", rows=[e.model_dump() for e in rows.errors])
    campaign_id = new_id("cmp")
    await _send_campaign(context, principal.tenant_id, AgentId(agent["agent_id"]), campaign_id, name, rows)
    await store.audit(
        session, principal, "campaign.create", "campaign", campaign_id, correlation_id=campaign_id
    )
    await session.commit()
    response.headers["Location"] = f"/api/campaigns/{campaign_id}"

    async def appeared(s: Any) -> dict[str, Any] | None:
        return await dialer_queries.get_campaign(s, principal.tenant_id, campaign_id)

    found = await context.bus.wait_for(appeared)
    if found is None:
        response.status_code = 202
    return CampaignCreatedPublic(
        campaign_id=campaign_id,
        accepted=len(rows.accepted),
        rejected=len(rows.errors),
        errors=rows.errors,
        campaign=CampaignPublic(**found) if found else None,
    )


def _env(tenant_id: str, agent_id: AgentId, correlation: str, salt: str) -> dict[str, Any]:
    return {
        "tenant_id": TenantId(tenant_id),
        "agent_id": agent_id,
        "seq": 0,
        "event_id": EventId(str(derive_event_id(correlation, 0, salt))),
        "occurred_at": now(),
        "correlation_id": CorrelationId(correlation),
    }


async def _send_campaign(
    context: ContextDep, tenant_id: str, agent_id: AgentId, campaign_id: str, name: str | None, rows: Rows
) -> None:
    cid = CampaignId(campaign_id)
    await context.bus.send(
        CreateCampaign(
            **_env(tenant_id, agent_id, campaign_id, "create-campaign"),
            campaign_id=cid,
            name=(name or campaign_id)[:200],
            total=len(rows.accepted),
        )
    )
    commands = []
    for index, (number, variables) in enumerate(rows.accepted):
        call_id = f"{campaign_id}-{index}"
        commands.append(
            PlaceCall(
                **_env(tenant_id, agent_id, call_id, "place-call"),
                to_number=number,
                variables=variables,
                idempotency_key=f"{campaign_id}:{number}",
                call_id=CallId(call_id),
                campaign_id=cid,
            )
        )
    # One agent, one partition: concurrent sends are batched by the producer and keep their order.
    try:
        for start in range(0, len(commands), _SEND_CHUNK):
            await asyncio.gather(*(context.bus.send(c) for c in commands[start : start + _SEND_CHUNK]))
    except KafkaError as err:
        # Part of the campaign is queued; a blind retry would dial those numbers twice.
        raise event_log_refused(
            err,
            f"campaign {campaign_id} was created but the event log became unavailable while its "
            f"numbers were queued; cancel it (POST /api/campaigns/{campaign_id}/cancel) before "
            "sending the list again",
            done=f"campaign {campaign_id} was created but not all its numbers were queued (cancel it: "
            f"POST /api/campaigns/{campaign_id}/cancel)",
            campaign_id=campaign_id,
        ) from err


async def _campaign(session: SessionDep, tenant_id: str, campaign_id: str) -> dict[str, Any]:
    found = await dialer_queries.get_campaign(session, tenant_id, campaign_id)
    if found is None:
        raise ProblemError(404, f"no campaign {campaign_id}")
    return found


@router.get("/{campaign_id}", response_model=CampaignPublic)
async def get_campaign(campaign_id: str, principal: Viewer, session: SessionDep) -> CampaignPublic:
    return CampaignPublic(**await _campaign(session, principal.tenant_id, campaign_id))


_SWITCHES: dict[str, tuple[type[PauseCampaign | ResumeCampaign | CancelCampaign], str]] = {
    "pause": (PauseCampaign, "paused"),
    "resume": (ResumeCampaign, "running"),
    "cancel": (CancelCampaign, "cancelled"),
}


async def _switch(
    action: str,
    campaign_id: str,
    principal: Operator,
    context: ContextDep,
    session: SessionDep,
    response: Response,
) -> CampaignPublic:
    found = await _campaign(session, principal.tenant_id, campaign_id)
    if found["status"] in ("cancelled", "completed"):
        raise ProblemError(409, f"campaign {campaign_id} is {found['status']}")
    kind, wanted = _SWITCHES[action]
    correlation = new_id("cmd")
    agent_id = AgentId(found["agent_id"])
    env = _env(principal.tenant_id, agent_id, correlation, "command")
    command = kind(**env, campaign_id=CampaignId(campaign_id))
    await context.bus.send(command)
    await store.audit(
        session, principal, f"campaign.{action}", "campaign", campaign_id, correlation_id=correlation
    )
    await session.commit()

    async def switched(s: Any) -> dict[str, Any] | None:
        row = await dialer_queries.get_campaign(s, principal.tenant_id, campaign_id)
        return row if row is not None and row["status"] in (wanted, "completed") else None

    done = await context.bus.wait_for(switched)
    if done is None:
        response.status_code = 202
    return CampaignPublic(**(done or found))


@router.post("/{campaign_id}/pause", response_model=CampaignPublic)
async def pause(
    campaign_id: str, principal: Operator, context: ContextDep, session: SessionDep, response: Response
) -> CampaignPublic:
    return await _switch("pause", campaign_id, principal, context, session, response)


@router.post("/{campaign_id}/resume", response_model=CampaignPublic)
async def resume(
    campaign_id: str, principal: Operator, context: ContextDep, session: SessionDep, response: Response
) -> CampaignPublic:
    return await _switch("resume", campaign_id, principal, context, session, response)


@router.post("/{campaign_id}/cancel", response_model=CampaignPublic)
async def cancel(
    campaign_id: str, principal: Operator, context: ContextDep, session: SessionDep, response: Response
) -> CampaignPublic:
    return await _switch("cancel", campaign_id, principal, context, session, response)
