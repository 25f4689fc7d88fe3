"""Baseline: projection checkpoints (Kafka offsets) and per-aggregate positions.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A projection commits its Kafka offsets in the same transaction as its rows.
    op.create_table(
        "projection_checkpoint",
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("projection", "topic", "partition", name="pk_projection_checkpoint"),
    )
    # ... and skips any event whose seq is not above the last one it applied.
    op.create_table(
        "aggregate_position",
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("projection", "aggregate_id", name="pk_aggregate_position"),
    )


def downgrade() -> None:
    op.drop_table("aggregate_position")
    op.drop_table("projection_checkpoint")
