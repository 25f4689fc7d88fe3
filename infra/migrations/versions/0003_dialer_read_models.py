"""Dialer read models: campaign, campaign_call (progress) and call_summary.

Revision ID: 0003_dialer_read_models
Revises: 0002_read_models
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_dialer_read_models"
down_revision: str | None = "0002_read_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("cancelled", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign")),
    )
    op.create_index(
        op.f("ix_campaign_tenant_id_created_at_campaign_id"),
        "campaign",
        ["tenant_id", "created_at", "campaign_id"],
    )
    op.create_table(
        "campaign_call",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("answered", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("failed", sa.Boolean(), server_default="false", nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_campaign_call")),
    )
    op.create_index(op.f("ix_campaign_call_campaign_id_stage"), "campaign_call", ["campaign_id", "stage"])
    op.create_table(
        "call_summary",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("outcome_label", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("summarized_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_call_summary")),
    )
    op.create_index(op.f("ix_call_summary_tenant_id"), "call_summary", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_call_summary_tenant_id"), table_name="call_summary")
    op.drop_table("call_summary")
    op.drop_index(op.f("ix_campaign_call_campaign_id_stage"), table_name="campaign_call")
    op.drop_table("campaign_call")
    op.drop_index(op.f("ix_campaign_tenant_id_created_at_campaign_id"), table_name="campaign")
    op.drop_table("campaign")
