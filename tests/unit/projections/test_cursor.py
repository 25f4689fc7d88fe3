"""Pagination cursors: what encode_cursor issues reads back; anything else is a BadCursorError (400)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from projections.queries import BadCursorError, decode_cursor, encode_cursor


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    "at", [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 9, tzinfo=timezone(timedelta(hours=-5)))]
)
def test_an_issued_cursor_reads_back(at: datetime) -> None:
    assert decode_cursor(encode_cursor(at, "call-1|x")) == (at, "call-1|x")


@pytest.mark.parametrize(
    "raw",
    [
        # A NUL in the key reached PostgreSQL, which refused it: 422 instead of 400.
        "2026-01-01T00:00:00+00:00|a\x00b",
        # Naive times were compared as if they were UTC, whatever the client meant.
        "2026-01-01T00:00:00|x",
        "2026-01-01|x",
        # No such instant in UTC.
        "9999-12-31T23:00:00-05:00|x",
        "0001-01-01T00:00:00+05:00|x",
        "2026-01-01T00:00:00+00:00",
        "not a time|x",
    ],
)
def test_a_cursor_this_api_could_not_have_issued_is_refused(raw: str) -> None:
    with pytest.raises(BadCursorError):
        decode_cursor(_cursor(raw))


def test_text_that_is_not_base64_is_refused() -> None:
    with pytest.raises(BadCursorError):
        decode_cursor("abc")
