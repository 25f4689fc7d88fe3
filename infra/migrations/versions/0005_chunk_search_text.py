"""chunk.search_text: the text as substring search compares it (NFKC, lower case), computed once.

Queries in scripts written without spaces match terms as substrings (projections.unspaced_search).
Normalising every chunk's text at query time cost ~140 ms per 1,000 chunks (bench/bench_search.py);
a stored generated column moves that to the write.

Revision ID: 0005_chunk_search_text
Revises: 0004_summary_failures
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_chunk_search_text"
down_revision: str | None = "0004_summary_failures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "chunk",
        sa.Column("search_text", sa.Text(), sa.Computed("lower(normalize(text, NFKC))", persisted=True)),
    )


def downgrade() -> None:
    op.drop_column("chunk", "search_text")
