"""Knowledge search in scripts written without spaces (Japanese, Chinese, Korean, Thai), on the real database.

Full-text search reads a Japanese sentence as one word, so before these queries found nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from projections import queries
from tests.integration.readside.call_stream import unique
from tests.integration.readside.test_rs_knowledge_search_words import _document
from tests.integration.readside.test_rs_projection_unstorable import rs_sessions

pytestmark = pytest.mark.integration
__all__ = ["rs_sessions"]  # the fixture

REFUNDS_JA = "当店の返金ポリシー。商品到着後30日以内であれば返金いたします。送料はお客様負担です。"
HOURS_JA = "営業時間は午前9時から午後5時までです。日曜日は休業です。"


@pytest.mark.parametrize(
    ("text", "query"),
    [
        (REFUNDS_JA, "返金"),
        (REFUNDS_JA, "送料"),
        ("我们的退款政策：收到商品后三十天内可以退款。", "退款"),
        ("환불은 구매 후 30일 이내에 가능합니다.", "환불"),
        ("คุณสามารถขอคืนเงินได้ภายในสามสิบวัน", "คืนเงิน"),
        ("ＩＰＨＯＮＥの保証は一年間です。", "iPhone 保証"),
    ],
)
async def test_a_word_inside_unspaced_text_is_found(
    rs_sessions: async_sessionmaker[AsyncSession], text: str, query: str
) -> None:
    tenant = unique("tenant")
    await _document(rs_sessions, tenant, text)
    async with rs_sessions() as session:
        found = await queries.search_chunks(session, tenant, query)
    assert [row["chunk_id"].endswith(":0") for row in found] == [True]
    assert "<mark>" in found[0]["snippet"]


async def test_terms_must_all_match_exclusions_must_not_and_more_matches_rank_first(
    rs_sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = unique("tenant")
    kb = await _document(rs_sessions, tenant, HOURS_JA, REFUNDS_JA, "返金は店頭でも承ります。")
    async with rs_sessions() as session:
        refunds = await queries.search_chunks(session, tenant, "返金")
        both = await queries.search_chunks(session, tenant, "返金 送料")
        without = await queries.search_chunks(session, tenant, "返金 -送料")
        elsewhere = await queries.search_chunks(session, tenant, "返金", kb_ids=[unique("kb")])
        in_kb = await queries.search_chunks(session, tenant, "営業時間", kb_ids=[kb])
    assert [r["chunk_id"].rsplit(":", 1)[1] for r in refunds] == ["1", "2"]  # two matches before one
    assert refunds[0]["rank"] == 2.0
    assert refunds[0]["snippet"].count("<mark>返金</mark>") == 2
    assert [r["chunk_id"].rsplit(":", 1)[1] for r in both] == ["1"]
    assert [r["chunk_id"].rsplit(":", 1)[1] for r in without] == ["2"]
    assert elsewhere == []
    assert [r["chunk_id"].rsplit(":", 1)[1] for r in in_kb] == ["0"]


async def test_another_tenants_unspaced_chunks_are_never_found(
    rs_sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner, other = unique("tenant"), unique("tenant")
    kb = await _document(rs_sessions, owner, REFUNDS_JA)
    async with rs_sessions() as session:
        assert await queries.search_chunks(session, other, "返金") == []
        assert await queries.search_chunks(session, other, "返金", kb_ids=[kb]) == []
        assert len(await queries.search_chunks(session, owner, "返金")) == 1


@pytest.mark.parametrize(
    ("text", "query", "marked"),
    [
        # Python's lower() makes İ two characters (i + a combining dot) and a word-final Σ a ς;
        # PostgreSQL's, which made chunk.search_text, makes them i and σ: the very text the
        # chunk holds was not found. Both sides are now lower-cased by PostgreSQL.
        ("İstanbul店の返金ポリシー", "İstanbul店", "İstanbul店"),
        ("ΟΔΟΣ 3番地の店舗", "ΟΔΟΣ 店舗", "ΟΔΟΣ"),
    ],
)
async def test_a_term_written_as_the_text_is_found_whatever_its_letters_lower_case_to(
    rs_sessions: async_sessionmaker[AsyncSession], text: str, query: str, marked: str
) -> None:
    tenant = unique("tenant")
    await _document(rs_sessions, tenant, text)
    async with rs_sessions() as session:
        found = await queries.search_chunks(session, tenant, query)
    assert [row["chunk_id"].endswith(":0") for row in found] == [True]
    assert f"<mark>{marked}</mark>" in found[0]["snippet"]
