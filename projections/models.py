"""SQLAlchemy 2 tables of the read models (what migration 0002 creates), with explicit naming."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TEXT_SEARCH_CONFIG = "english"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class ProjectionCheckpoint(Base):
    """Kafka position of a projection (created by 0001_baseline)."""

    __tablename__ = "projection_checkpoint"
    projection: Mapped[str] = mapped_column(Text, primary_key=True)
    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = _now()


class AggregatePosition(Base):
    """Last applied seq of an aggregate in a projection (created by 0001_baseline)."""

    __tablename__ = "aggregate_position"
    projection: Mapped[str] = mapped_column(Text, primary_key=True)
    aggregate_id: Mapped[str] = mapped_column(Text, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class Tenant(Base):
    __tablename__ = "tenant"
    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class ApiKey(Base):
    """An API key: only its hash is stored; the secret is shown once."""

    __tablename__ = "api_key"
    key_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.tenant_id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditLog(Base):
    """Who changed what, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "tenant_id", "created_at"),)
    audit_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    resource_type: Mapped[str] = mapped_column(Text)
    resource_id: Mapped[str] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = _now()


class CommandResult(Base):
    """The outcome of a command, by correlation id, so API writes can wait for it."""

    __tablename__ = "command_result"
    correlation_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    aggregate_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # applied | rejected
    code: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]


class Call(Base):
    __tablename__ = "call"
    __table_args__ = (
        Index(None, "tenant_id", "started_at", "call_id"),
        Index(None, "tenant_id", "agent_id", "started_at"),
        Index(None, "tenant_id", "status"),
        Index(None, "tenant_id", "from_number"),
        Index(None, "tenant_id", "to_number"),
    )
    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    direction: Mapped[str | None] = mapped_column(Text)
    from_number: Mapped[str | None] = mapped_column(Text)
    to_number: Mapped[str | None] = mapped_column(Text)
    agent_id: Mapped[str | None] = mapped_column(Text)
    agent_version: Mapped[int | None] = mapped_column(Integer)
    twilio_call_sid: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    telephony_status: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    end_reason: Mapped[str | None] = mapped_column(Text)
    ended_by: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    failure_detail: Mapped[str | None] = mapped_column(Text)
    interruptions: Mapped[int] = mapped_column(Integer, server_default="0")
    tool_calls: Mapped[int] = mapped_column(Integer, server_default="0")
    first_agent_audio_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class CallEvent(Base):
    """The call timeline: one row per event."""

    __tablename__ = "call_event"
    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)


class TranscriptSegment(Base):
    __tablename__ = "transcript_segment"
    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    segment_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    speaker: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    final: Mapped[bool] = mapped_column(Boolean)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]


class ToolCall(Base):
    __tablename__ = "tool_call"
    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tool_call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # requested | completed | failed
    arguments_json: Mapped[str | None] = mapped_column(Text)
    result_json: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    requested_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Recording(Base):
    __tablename__ = "recording"
    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    uri: Mapped[str] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    channels: Mapped[int] = mapped_column(Integer)
    sample_rate: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AnalyticsDaily(Base):
    """Per tenant, agent and UTC day (of call start): recomputed from `call` as calls change."""

    __tablename__ = "analytics_daily"
    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    agent_id: Mapped[str] = mapped_column(Text, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    avg_duration_ms: Mapped[float | None] = mapped_column(Float)
    p95_duration_ms: Mapped[float | None] = mapped_column(Float)
    interruptions: Mapped[int] = mapped_column(Integer)
    tool_calls: Mapped[int] = mapped_column(Integer)
    avg_first_agent_audio_ms: Mapped[float | None] = mapped_column(Float)
    p95_first_agent_audio_ms: Mapped[float | None] = mapped_column(Float)


class Agent(Base):
    __tablename__ = "agent"
    __table_args__ = (Index(None, "tenant_id", "created_at", "agent_id"),)
    agent_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # active | archived
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AgentVersion(Base):
    """An immutable published configuration."""

    __tablename__ = "agent_version"
    agent_id: Mapped[str] = mapped_column(ForeignKey("agent.agent_id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    published_at: Mapped[datetime]


class KnowledgeBase(Base):
    __tablename__ = "knowledge_base"
    __table_args__ = (Index(None, "tenant_id", "created_at", "kb_id"),)
    kb_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Document(Base):
    __tablename__ = "document"
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_base.kb_id"), primary_key=True)
    document_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(Text)
    content_uri: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer, server_default="0")
    added_at: Mapped[datetime]


class Chunk(Base):
    """A searchable piece of a document; `tsv` is generated by PostgreSQL and GIN-indexed."""

    __tablename__ = "chunk"
    __table_args__ = (
        Index(None, "kb_id", "document_id", "ordinal"),
        Index("ix_chunk_tsv", "tsv", postgresql_using="gin"),
    )
    chunk_id: Mapped[str] = mapped_column(Text, primary_key=True)
    kb_id: Mapped[str] = mapped_column(Text)
    document_id: Mapped[str] = mapped_column(Text)
    tenant_id: Mapped[str] = mapped_column(Text)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(f"to_tsvector('{TEXT_SEARCH_CONFIG}', text)", persisted=True)
    )
    # What substring search (projections.unspaced_search) compares: normalised once, at the write.
    search_text: Mapped[str] = mapped_column(Text, Computed("lower(normalize(text, NFKC))", persisted=True))
