"""Full-text search finds words next to non-ASCII punctuation and spaces, and never another
tenant's chunks. The embedded PostgreSQL was created with a C ctype, whose text-search parser
reads every non-ASCII character as a letter: “refund” and "hours—nine" were single words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from projections import models, queries
from tests.integration.readside.call_stream import unique
from tests.integration.readside.test_rs_projection_unstorable import rs_sessions

pytestmark = pytest.mark.integration
__all__ = ["rs_sessions"]  # the fixture
NOW = datetime(2026, 11, 27, tzinfo=UTC)


async def _document(sessions: async_sessionmaker[AsyncSession], tenant: str, *texts: str) -> str:
    kb, document = unique("kb"), unique("doc")
    async with sessions() as session, session.begin():
        await session.execute(
            insert(models.KnowledgeBase).values(kb_id=kb, tenant_id=tenant, name="kb", created_at=NOW)
        )
        await session.execute(
            insert(models.Document).values(
                kb_id=kb, document_id=document, tenant_id=tenant, title="t", content_type="text/plain",
                content_uri=None, size_bytes=1, chunk_count=len(texts), added_at=NOW,
            )
        )  # fmt: skip
        for ordinal, text in enumerate(texts):
            await session.execute(
                insert(models.Chunk).values(
                    chunk_id=f"{document}:{ordinal}", kb_id=kb, document_id=document, tenant_id=tenant,
                    ordinal=ordinal, text=text,
                )
            )  # fmt: skip
    return kb


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Our “refund” policy is generous.", "refund"),
        ("Opening hours—nine to five.", "hours"),
        ("Ask about «parking» at the desk…", "parking"),
        ("Closed on Sundays…", "sunday"),
    ],
)
async def test_words_next_to_non_ascii_punctuation_are_found(
    rs_sessions: async_sessionmaker[AsyncSession], text: str, query: str
) -> None:
    tenant = unique("tenant")
    await _document(rs_sessions, tenant, text)
    async with rs_sessions() as session:
        found = await queries.search_chunks(session, tenant, query)
    assert [row["chunk_id"].endswith(":0") for row in found] == [True]


async def test_another_tenants_chunks_are_never_found(rs_sessions: async_sessionmaker[AsyncSession]) -> None:
    owner, other = unique("tenant"), unique("tenant")
    kb = await _document(rs_sessions, owner, "Refunds take thirty days.")
    async with rs_sessions() as session:
        assert await queries.search_chunks(session, other, "refunds") == []
        assert await queries.search_chunks(session, other, "refunds", kb_ids=[kb]) == []
        assert len(await queries.search_chunks(session, owner, "refunds")) == 1
