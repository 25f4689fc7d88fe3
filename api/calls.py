"""/api/calls: list, filter and read calls; place an outbound call; end a live call."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, field_validator

from api import store
from api.commands import new_id, now
from api.deps import ContextDep, Operator, SessionDep, Viewer
from api.problems import ProblemError
from projections import dialer_queries, queries
from projections.call_view import FINAL_STATUSES
from schemas.calls import EndCall
from schemas.dialer import PlaceCall
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, EventId, TenantId
from streams.writers.agent_rules import E164

router = APIRouter(prefix="/api/calls", tags=["calls"])


class CallPublic(BaseModel):
    call_id: str
    status: str
    direction: str | None
    from_number: str | None
    to_number: str | None
    agent_id: str | None
    agent_version: int | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    end_reason: str | None
    ended_by: str | None
    outcome: str | None
    summary: str | None = None
    summary_status: str | None = Field(
        default=None,
        description="'summarized'; 'failed' when the model gave no usable summary "
        "(summary_error says why); null until the summary worker has run",
    )
    summary_error: str | None = None
    interruptions: int
    tool_calls: int
    first_agent_audio_ms: int | None


class CallsPublic(BaseModel):
    items: list[CallPublic]
    next_cursor: str | None


class CallEventPublic(BaseModel):
    seq: int
    event_type: str
    occurred_at: datetime
    payload: dict[str, Any]


class TranscriptSegmentPublic(BaseModel):
    segment_index: int
    speaker: str
    text: str
    final: bool
    start_ms: int
    end_ms: int | None


class ToolCallPublic(BaseModel):
    tool_call_id: str
    name: str
    status: str
    arguments_json: str | None
    result_json: str | None
    error: str | None
    duration_ms: int | None
    requested_at: datetime | None
    finished_at: datetime | None


class RecordingPublic(BaseModel):
    uri: str
    duration_ms: int
    channels: int
    sample_rate: int
    format: str


def _e164(value: str | None) -> str | None:
    if value is not None and not E164.fullmatch(value):
        raise ValueError("must be an E.164 number such as +14155550100")
    return value


class CallCreate(BaseModel):
    """An outbound call request; the dialer places it within the agent's limits and window."""

    agent_id: str
    to_number: str
    from_number: str | None = None
    variables: dict[str, str] = {}
    priority: int = Field(default=0, ge=-100, le=100)
    not_before: datetime | None = None
    deadline: datetime | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)

    _numbers = field_validator("to_number", "from_number")(_e164)

    @field_validator("not_before", "deadline")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a timezone")
        if value is not None:
            try:  # the event log carries it in UTC: 9999-12-31T23:00-05:00 has no such instant
                value.astimezone(UTC)
            except OverflowError as err:
                raise ValueError("is out of range once in UTC") from err
        return value


DIALER_REFUSAL_STATUS = {
    "invalid_number": 422,
    "do_not_call": 422,
    "deadline_passed": 422,
    "unknown_agent": 422,
    "archived_agent": 409,
}
"""HTTP status of each reason the dialer refuses a call for (others: 409)."""


class CallEnd(BaseModel):
    reason: str = Field(default="ended by operator", max_length=500)


def _in_utc(value: datetime) -> datetime:
    try:  # as for CallCreate's times: 9999-12-31T23:00-05:00 has no such instant in UTC
        value.astimezone(UTC)
    except OverflowError as err:
        raise ValueError("is out of range once in UTC") from err
    return value


# A time filter: a naive time would be compared as if it were UTC, whatever the caller meant.
TimeFilter = Annotated[AwareDatetime, AfterValidator(_in_utc)]


async def _call(session: SessionDep, principal: Viewer, call_id: str) -> dict[str, Any]:
    call = await queries.get_call(session, principal.tenant_id, call_id)
    if call is None:
        raise ProblemError(404, f"no call {call_id}")
    return call


@router.get("", response_model=CallsPublic)
async def list_calls(
    principal: Viewer,
    session: SessionDep,
    status: str | None = None,
    agent_id: str | None = None,
    number: str | None = None,
    started_from: TimeFilter | None = None,
    started_to: TimeFilter | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CallsPublic:
    try:
        page = await queries.list_calls(
            session,
            principal.tenant_id,
            status=status,
            agent_id=agent_id,
            number=number,
            started_from=started_from,
            started_to=started_to,
            cursor=cursor,
            limit=limit,
        )
    except queries.BadCursorError as err:
        raise ProblemError(400, str(err)) from err
    summaries = await dialer_queries.call_summaries(
        session, principal.tenant_id, [str(item["call_id"]) for item in page.items]
    )
    items = [_with_summary(item, summaries.get(str(item["call_id"]))) for item in page.items]
    # One validation of the whole page (in pydantic-core) instead of one model built per row.
    return CallsPublic.model_validate({"items": items, "next_cursor": page.next_cursor})


def _with_summary(call: dict[str, Any], summary: dict[str, Any] | None) -> dict[str, Any]:
    """The call as the API shows it: with its post-call summary, once the summary worker has run."""
    if summary is None:
        return call
    return call | {
        "summary": summary["summary"],
        "outcome": call["outcome"] or summary["outcome_label"],
        "summary_status": summary["status"],
        "summary_error": summary["failure_reason"],
    }


@router.get("/{call_id}", response_model=CallPublic)
async def get_call(call_id: str, principal: Viewer, session: SessionDep) -> CallPublic:
    call = await _call(session, principal, call_id)
    summary = await dialer_queries.call_summary(session, principal.tenant_id, call_id)
    call = _with_summary(call, summary)
    return CallPublic(**call)


@router.get("/{call_id}/timeline", response_model=list[CallEventPublic])
async def timeline(call_id: str, principal: Viewer, session: SessionDep) -> list[CallEventPublic]:
    await _call(session, principal, call_id)
    return [CallEventPublic(**r) for r in await queries.call_timeline(session, principal.tenant_id, call_id)]


@router.get("/{call_id}/transcript", response_model=list[TranscriptSegmentPublic])
async def transcript(call_id: str, principal: Viewer, session: SessionDep) -> list[TranscriptSegmentPublic]:
    await _call(session, principal, call_id)
    rows = await queries.call_transcript(session, principal.tenant_id, call_id)
    return [TranscriptSegmentPublic(**r) for r in rows]


@router.get("/{call_id}/tool-calls", response_model=list[ToolCallPublic])
async def tool_calls(call_id: str, principal: Viewer, session: SessionDep) -> list[ToolCallPublic]:
    await _call(session, principal, call_id)
    return [ToolCallPublic(**r) for r in await queries.call_tool_calls(session, principal.tenant_id, call_id)]


@router.get("/{call_id}/recording", response_model=RecordingPublic)
async def recording(call_id: str, principal: Viewer, session: SessionDep) -> RecordingPublic:
    found = await queries.call_recording(session, principal.tenant_id, call_id)
    if found is None:
        raise ProblemError(404, f"no recording for call {call_id}")
    return RecordingPublic(**found)


async def _check_caller_id(
    session: SessionDep, tenant_id: str, agent: dict[str, Any], body: CallCreate
) -> None:
    """422 unless the call shows one of the agent's own numbers, and its deadline can still be met.

    Any E.164 number was dialled as the caller id, another tenant's included; and a deadline
    already past was accepted, then refused by the dialer where the client never saw it.
    """
    errors = []
    if body.from_number is not None:
        version = await queries.agent_version(session, tenant_id, agent["agent_id"], agent["current_version"])
        numbers = (version or {}).get("config", {}).get("phone_numbers", [])
        if body.from_number not in numbers:
            errors.append({"field": "from_number", "message": "must be one of the agent's phone numbers"})
    if body.deadline is not None and body.deadline <= now():
        errors.append({"field": "deadline", "message": "has already passed"})
    if body.deadline is not None and body.not_before is not None and body.deadline <= body.not_before:
        errors.append({"field": "deadline", "message": "must come after not_before"})
    if errors:
        raise ProblemError(422, "the request is invalid", errors=errors)


@router.post("", status_code=201, response_model=CallPublic | None)
async def place_call(
    body: CallCreate, principal: Operator, context: ContextDep, session: SessionDep, response: Response
) -> CallPublic | None:
    call_id = _call_id(principal.tenant_id, body)
    location = f"/api/calls/{call_id}"
    if body.idempotency_key is not None:
        # The same request again answers the call it made, before anything is checked anew (a
        # deadline since passed, an agent since archived would refuse the repeat).
        repeated = await queries.get_call(session, principal.tenant_id, call_id)
        if repeated is not None:
            response.headers["Location"] = location
            return CallPublic(**repeated)
    agent = await queries.get_agent(session, principal.tenant_id, body.agent_id)
    if agent is None:
        raise ProblemError(
            422, "the request is invalid", errors=[{"field": "agent_id", "message": "no such agent"}]
        )
    if agent["status"] != "active" or agent["current_version"] < 1:
        raise ProblemError(409, "the agent is archived or has no published version")
    await _check_caller_id(session, principal.tenant_id, agent, body)
    response.headers["Location"] = location
    command = PlaceCall(
        tenant_id=TenantId(principal.tenant_id),
        agent_id=AgentId(body.agent_id),
        seq=0,
        event_id=EventId(str(derive_event_id(call_id, 0, "place-call"))),
        occurred_at=now(),
        correlation_id=CorrelationId(call_id),
        to_number=body.to_number,
        from_number=body.from_number,
        variables=body.variables,
        priority=body.priority,
        not_before=body.not_before,
        deadline=body.deadline,
        idempotency_key=body.idempotency_key or call_id,
        call_id=CallId(call_id),
    )
    await context.bus.send(command)
    await store.audit(session, principal, "call.place", "call", call_id, correlation_id=call_id)
    await session.commit()

    async def placed_or_refused(s: Any) -> dict[str, Any] | None:
        call = await queries.get_call(s, principal.tenant_id, call_id)
        if call is not None:
            return call
        result = await queries.command_result(s, call_id)
        return result if result is not None and result["status"] == "rejected" else None

    found = await context.bus.wait_for(placed_or_refused)
    if found is None:
        response.status_code = 202
        return None
    if "call_id" not in found:  # the dialer's refusal, recorded as the command's result
        raise ProblemError(
            DIALER_REFUSAL_STATUS.get(found["code"], 409),
            f"the dialer refused the call: {found['reason']}",
            code=found["code"],
        )
    return CallPublic(**found)


def _call_id(tenant_id: str, body: CallCreate) -> str:
    """A fresh id, or with an idempotency key the same id for every repeat of the request.

    The dialer drops a repeated key as a duplicate; with a fresh id each time, the repeat's
    Location named a call that would never exist.
    """
    if body.idempotency_key is None:
        return new_id("call")
    key = "\x1f".join((tenant_id, body.agent_id, body.idempotency_key)).encode()
    return f"call_{hashlib.blake2b(key, digest_size=16).hexdigest()}"


@router.post("/{call_id}/end", response_model=CallPublic | None)
async def end_call(
    call_id: str,
    body: CallEnd,
    principal: Operator,
    context: ContextDep,
    session: SessionDep,
    response: Response,
) -> CallPublic | None:
    call = await _call(session, principal, call_id)
    if call["status"] in FINAL_STATUSES:
        raise ProblemError(409, f"call {call_id} has already ended")
    correlation = new_id("cmd")
    command = EndCall(
        tenant_id=TenantId(principal.tenant_id),
        call_id=CallId(call_id),
        seq=0,
        event_id=EventId(str(derive_event_id(correlation, 0, "command"))),
        occurred_at=now(),
        correlation_id=CorrelationId(correlation),
        requested_by="operator",
        reason=body.reason,
    )
    await context.bus.send(command)
    await store.audit(session, principal, "call.end", "call", call_id, correlation_id=correlation)
    await session.commit()

    async def ended(s: Any) -> dict[str, Any] | None:
        row = await queries.get_call(s, principal.tenant_id, call_id)
        return row if row is not None and row["status"] in FINAL_STATUSES else None

    found = await context.bus.wait_for(ended)
    if found is None:
        response.status_code = 202
        response.headers["Location"] = f"/api/calls/{call_id}"
        return None
    return CallPublic(**found)
