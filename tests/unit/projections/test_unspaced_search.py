"""Reading a query in an unspaced script, and cutting its snippet (pure)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.unspaced_search import UnspacedQuery, normalise, snippet, unspaced_query


@pytest.mark.parametrize(
    "query",
    ["refund policy", "Öffnungszeiten", "hours—nine", "", "   ", '"opening hours" -sunday'],
)
def test_queries_in_spaced_scripts_are_left_to_full_text_search(query: str) -> None:
    assert unspaced_query(query) is None


@pytest.mark.parametrize(
    ("query", "include", "exclude"),
    [
        ("返金", ("返金",), ()),
        ("返金 期限", ("返金", "期限"), ()),
        ("退款政策", ("退款政策",), ()),
        ("환불", ("환불",), ()),
        ("คืนเงิน", ("คืนเงิน",), ()),
        ("返金 -手数料", ("返金",), ("手数料",)),
        ('"返金 期限" 送料', ("返金 期限", "送料"), ()),
        ("返金 OR 交換", ("返金", "交換"), ()),
        ("返金 返金", ("返金",), ()),
        ("ＡＢＣ 返金", ("ABC", "返金"), ()),  # full-width letters are letters
        ("iPhone 保証", ("iPhone", "保証"), ()),  # PostgreSQL lower-cases them
        ("返金 返金 RETURN return", ("返金", "RETURN"), ()),
        ("-返金", (), ("返金",)),
        ('返金 ""', ("返金",), ()),
    ],
)
def test_an_unspaced_query_is_read_as_terms(
    query: str, include: tuple[str, ...], exclude: tuple[str, ...]
) -> None:
    assert unspaced_query(query) == UnspacedQuery(include, exclude)


def test_a_snippet_marks_every_match_in_a_window_around_the_first() -> None:
    text = "当店の返金ポリシー。商品到着後30日以内であれば返金いたします。"
    assert snippet(text, ("返金",)) == (
        "当店の<mark>返金</mark>ポリシー。商品到着後30日以内であれば<mark>返金</mark>いたします。"
    )


def test_a_long_text_is_cut_around_the_first_match_with_ellipses() -> None:
    text = "あ" * 300 + "返金" + "い" * 300
    cut = snippet(text, ("返金",), width=60)
    assert cut.startswith("…")
    assert cut.endswith("…")
    assert "<mark>返金</mark>" in cut
    assert len(cut.replace("<mark>", "").replace("</mark>", "")) == 62


def test_matching_ignores_case_without_drifting_past_characters_whose_lower_case_is_longer() -> None:
    text = "İİİİ Garantie für das iPhone: 保証"
    assert "<mark>iPhone</mark>" in snippet(text, (normalise("IPHONE"),))
    assert "<mark>保証</mark>" in snippet(text, ("保証",))


def test_longer_terms_are_marked_whole_when_one_contains_another() -> None:
    assert snippet("返金期限について", ("返金", "返金期限")) == "<mark>返金期限</mark>について"


@given(st.text(max_size=400), st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3))
def test_a_snippet_never_fails_and_only_adds_marks_and_ellipses(text: str, terms: list[str]) -> None:
    cut = snippet(text, tuple(normalise(t) for t in terms))
    plain = cut.replace("<mark>", "").replace("</mark>", "").strip("…")
    assert plain in unicodedata.normalize("NFKC", text)
