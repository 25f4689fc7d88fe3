"""Read models: calls, timeline, transcripts, tool calls, recordings, agents, knowledge, analytics, auth.

Revision ID: 0002_read_models
Revises: 0001_baseline
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0002_read_models"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent",
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent")),
    )
    op.create_index(
        op.f("ix_agent_tenant_id_created_at_agent_id"),
        "agent",
        ["tenant_id", "created_at", "agent_id"],
        unique=False,
    )
    op.create_table(
        "analytics_daily",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("avg_duration_ms", sa.Float(), nullable=True),
        sa.Column("p95_duration_ms", sa.Float(), nullable=True),
        sa.Column("interruptions", sa.Integer(), nullable=False),
        sa.Column("tool_calls", sa.Integer(), nullable=False),
        sa.Column("avg_first_agent_audio_ms", sa.Float(), nullable=True),
        sa.Column("p95_first_agent_audio_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "agent_id", "day", name=op.f("pk_analytics_daily")),
    )
    op.create_table(
        "audit_log",
        sa.Column("audit_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("audit_id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        op.f("ix_audit_log_tenant_id_created_at"), "audit_log", ["tenant_id", "created_at"], unique=False
    )
    op.create_table(
        "call",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=True),
        sa.Column("from_number", sa.Text(), nullable=True),
        sa.Column("to_number", sa.Text(), nullable=True),
        sa.Column("agent_id", sa.Text(), nullable=True),
        sa.Column("agent_version", sa.Integer(), nullable=True),
        sa.Column("twilio_call_sid", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("telephony_status", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("ended_by", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("failure_detail", sa.Text(), nullable=True),
        sa.Column("interruptions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tool_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_agent_audio_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_call")),
    )
    op.create_index(
        op.f("ix_call_tenant_id_agent_id_started_at"),
        "call",
        ["tenant_id", "agent_id", "started_at"],
        unique=False,
    )
    op.create_index(op.f("ix_call_tenant_id_from_number"), "call", ["tenant_id", "from_number"], unique=False)
    op.create_index(
        op.f("ix_call_tenant_id_started_at_call_id"),
        "call",
        ["tenant_id", "started_at", "call_id"],
        unique=False,
    )
    op.create_index(op.f("ix_call_tenant_id_status"), "call", ["tenant_id", "status"], unique=False)
    op.create_index(op.f("ix_call_tenant_id_to_number"), "call", ["tenant_id", "to_number"], unique=False)
    op.create_table(
        "call_event",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "seq", name=op.f("pk_call_event")),
    )
    op.create_table(
        "chunk",
        sa.Column("chunk_id", sa.Text(), nullable=False),
        sa.Column("kb_id", sa.Text(), nullable=False),
        sa.Column("document_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', text)", persisted=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_chunk")),
    )
    op.create_index(
        op.f("ix_chunk_kb_id_document_id_ordinal"), "chunk", ["kb_id", "document_id", "ordinal"], unique=False
    )
    op.create_index("ix_chunk_tsv", "chunk", ["tsv"], unique=False, postgresql_using="gin")
    op.create_table(
        "command_result",
        sa.Column("correlation_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("correlation_id", name=op.f("pk_command_result")),
    )
    op.create_table(
        "knowledge_base",
        sa.Column("kb_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kb_id", name=op.f("pk_knowledge_base")),
    )
    op.create_index(
        op.f("ix_knowledge_base_tenant_id_created_at_kb_id"),
        "knowledge_base",
        ["tenant_id", "created_at", "kb_id"],
        unique=False,
    )
    op.create_table(
        "recording",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_recording")),
    )
    op.create_table(
        "tenant",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant")),
    )
    op.create_table(
        "tool_call",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("tool_call_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("arguments_json", sa.Text(), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("call_id", "tool_call_id", name=op.f("pk_tool_call")),
    )
    op.create_table(
        "transcript_segment",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("segment_index", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("speaker", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "segment_index", name=op.f("pk_transcript_segment")),
    )
    op.create_table(
        "agent_version",
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agent.agent_id"], name=op.f("fk_agent_version_agent_id_agent")
        ),
        sa.PrimaryKeyConstraint("agent_id", "version", name=op.f("pk_agent_version")),
    )
    op.create_table(
        "api_key",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.tenant_id"], name=op.f("fk_api_key_tenant_id_tenant")
        ),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_key")),
    )
    op.create_index(op.f("ix_api_key_tenant_id"), "api_key", ["tenant_id"], unique=False)
    op.create_table(
        "document",
        sa.Column("kb_id", sa.Text(), nullable=False),
        sa.Column("document_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("content_uri", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["kb_id"], ["knowledge_base.kb_id"], name=op.f("fk_document_kb_id_knowledge_base")
        ),
        sa.PrimaryKeyConstraint("kb_id", "document_id", name=op.f("pk_document")),
    )


def downgrade() -> None:
    op.drop_table("document")
    op.drop_index(op.f("ix_api_key_tenant_id"), table_name="api_key")
    op.drop_table("api_key")
    op.drop_table("agent_version")
    op.drop_table("transcript_segment")
    op.drop_table("tool_call")
    op.drop_table("tenant")
    op.drop_table("recording")
    op.drop_index(op.f("ix_knowledge_base_tenant_id_created_at_kb_id"), table_name="knowledge_base")
    op.drop_table("knowledge_base")
    op.drop_table("command_result")
    op.drop_index("ix_chunk_tsv", table_name="chunk", postgresql_using="gin")
    op.drop_index(op.f("ix_chunk_kb_id_document_id_ordinal"), table_name="chunk")
    op.drop_table("chunk")
    op.drop_table("call_event")
    op.drop_index(op.f("ix_call_tenant_id_to_number"), table_name="call")
    op.drop_index(op.f("ix_call_tenant_id_status"), table_name="call")
    op.drop_index(op.f("ix_call_tenant_id_started_at_call_id"), table_name="call")
    op.drop_index(op.f("ix_call_tenant_id_from_number"), table_name="call")
    op.drop_index(op.f("ix_call_tenant_id_agent_id_started_at"), table_name="call")
    op.drop_table("call")
    op.drop_index(op.f("ix_audit_log_tenant_id_created_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("analytics_daily")
    op.drop_index(op.f("ix_agent_tenant_id_created_at_agent_id"), table_name="agent")
    op.drop_table("agent")
