"""Tables of the dialer's read models (created by migration 0003): campaign progress, call summaries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from projections.models import Base


class Campaign(Base):
    """A campaign's name, agent and switches; its progress is counted from ``campaign_call``."""

    __tablename__ = "campaign"
    __table_args__ = (Index(None, "tenant_id", "created_at", "campaign_id"),)
    campaign_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    agent_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    total: Mapped[int] = mapped_column(Integer)
    paused: Mapped[bool] = mapped_column(Boolean, server_default="false")
    cancelled: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CampaignCall(Base):
    """Where one of a campaign's requests stands: queued, dialling, retrying or done."""

    __tablename__ = "campaign_call"
    __table_args__ = (Index(None, "campaign_id", "stage"),)
    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(Text)
    tenant_id: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(Text)
    answered: Mapped[bool] = mapped_column(Boolean, server_default="false")
    failed: Mapped[bool] = mapped_column(Boolean, server_default="false")


class CallSummary(Base):
    """The post-call summary and outcome label of a call (from voice.postcall.events.v1)."""

    __tablename__ = "call_summary"
    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text, index=True)
    agent_id: Mapped[str] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    outcome_label: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    summarized_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(Text, server_default="summarized")
    """'summarized', or 'failed' when the model gave no usable summary (``failure_reason``)."""
    failure_reason: Mapped[str | None] = mapped_column(Text)
