"""call_summary keeps failed summaries too: status ('summarized' or 'failed') and failure_reason.

Revision ID: 0004_summary_failures
Revises: 0003_dialer_read_models
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_summary_failures"
down_revision: str | None = "0003_dialer_read_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("call_summary", sa.Column("status", sa.Text(), server_default="summarized", nullable=False))
    op.add_column("call_summary", sa.Column("failure_reason", sa.Text(), nullable=True))
    op.alter_column("call_summary", "summary", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM call_summary WHERE status = 'failed'")
    op.alter_column("call_summary", "summary", existing_type=sa.Text(), nullable=False)
    op.drop_column("call_summary", "failure_reason")
    op.drop_column("call_summary", "status")
