"""Campaign progress as a pure fold of dialer events: which stage each campaign request is in.

The stages mirror the dialer's own counters: ``queued`` (never dialled), ``dialling`` (an attempt
is live), ``retrying`` (between attempts; counted as dialling) and ``done``. A request is
``answered`` once any attempt was answered (by a person or a machine) and ``failed`` when it
finished without a completed call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.dialer import (
    CallAttemptRecorded,
    CallAttemptStarted,
    CallRequestCompleted,
    CallRequestQueued,
    CampaignCancelled,
    CampaignCreated,
    CampaignPaused,
    CampaignResumed,
    DialerRequestRejected,
)
from schemas.registry import Record

PLACE_CALL = "voice.dialer.v1.PlaceCall"
_CANCELLABLE = ("queued", "retrying")


@dataclass(slots=True, kw_only=True)
class CallStage:
    call_id: str
    campaign_id: str
    tenant_id: str
    stage: str = "queued"
    answered: bool = False
    failed: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "campaign_id": self.campaign_id,
            "tenant_id": self.tenant_id,
            "stage": self.stage,
            "answered": self.answered,
            "failed": self.failed,
        }


@dataclass(slots=True)
class CampaignBatch:
    """The changes a batch of dialer events makes; ``calls`` holds every request it touched."""

    calls: dict[str, CallStage]
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    """Campaigns cancelled in this batch: their untouched queued requests are done too."""


def call_ids_of(records: list[Record]) -> set[str]:
    """The campaign requests a batch refers to (the rows to load before folding)."""
    ids: set[str] = set()
    for record in records:
        call_id = getattr(record, "call_id", None)
        if getattr(record, "campaign_id", None) is not None and isinstance(call_id, str):
            ids.add(call_id)
    return ids


def fold(batch: CampaignBatch, record: Record) -> None:
    """Apply one dialer event to the batch (events without a campaign change nothing)."""
    match record:
        case CampaignCreated():
            batch.campaigns[record.campaign_id] = {
                "campaign_id": record.campaign_id,
                "tenant_id": record.tenant_id,
                "agent_id": record.agent_id,
                "name": record.name,
                "total": record.total,
                "paused": False,
                "cancelled": False,
                "created_at": record.occurred_at,
                "updated_at": record.occurred_at,
            }
        case CampaignPaused() | CampaignResumed():
            _switch(batch, record.campaign_id, record.occurred_at, paused=isinstance(record, CampaignPaused))
        case CampaignCancelled():
            _switch(batch, record.campaign_id, record.occurred_at, cancelled=True)
            batch.cancelled.append(record.campaign_id)
            for call in batch.calls.values():
                if call.campaign_id == record.campaign_id and call.stage in _CANCELLABLE:
                    call.stage = "done"
        case _:
            _fold_call(batch, record)


def _switch(batch: CampaignBatch, campaign_id: str, at: datetime, **values: bool) -> None:
    row = batch.campaigns.setdefault(campaign_id, {"campaign_id": campaign_id})
    row.update(values, updated_at=at)


def _fold_call(batch: CampaignBatch, record: Record) -> None:
    campaign_id = getattr(record, "campaign_id", None)
    if campaign_id is None:
        return
    match record:
        case CallRequestQueued():
            _call(batch, record.call_id, campaign_id, record.tenant_id)
        case DialerRequestRejected() if record.command_type == PLACE_CALL and record.call_id:
            if record.reason != "duplicate":
                call = _call(batch, record.call_id, campaign_id, record.tenant_id)
                call.stage, call.failed = "done", True
        case CallAttemptStarted():
            _call(batch, record.call_id, campaign_id, record.tenant_id).stage = "dialling"
        case CallAttemptRecorded():
            call = _call(batch, record.call_id, campaign_id, record.tenant_id)
            if record.outcome in ("answered", "machine"):
                call.answered = True
            elif record.retry_at is not None and call.stage != "done":
                call.stage = "retrying"
        case CallRequestCompleted():
            call = _call(batch, record.call_id, campaign_id, record.tenant_id)
            call.stage = "done"
            call.failed = record.outcome not in ("completed", "machine")
        case _:
            return


def _call(batch: CampaignBatch, call_id: str, campaign_id: str, tenant_id: str) -> CallStage:
    found = batch.calls.get(call_id)
    if found is None:
        found = batch.calls[call_id] = CallStage(
            call_id=call_id, campaign_id=campaign_id, tenant_id=tenant_id
        )
    return found


def progress(counts: dict[str, int], total: int, paused: bool, cancelled: bool) -> dict[str, Any]:
    """The figures the API shows, from stage counts; ``status`` says where the campaign stands."""
    done = counts.get("done", 0)
    if cancelled:
        status = "cancelled"
    elif total and done >= total:
        status = "completed"
    else:
        status = "paused" if paused else "running"
    return {
        "status": status,
        "queued": counts.get("queued", 0),
        "dialling": counts.get("dialling", 0) + counts.get("retrying", 0),
        "answered": counts.get("answered", 0),
        "failed": counts.get("failed", 0),
        "done": done,
    }
