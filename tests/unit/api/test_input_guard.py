"""The request guard finds exactly the JSON bodies whose text could not be stored."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from api.input_guard import NUL_DETAIL, SURROGATE_DETAIL, holds_lone_surrogate, unstorable_text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(st.text(alphabet=st.sampled_from(["a", "\\", "u", "d", "8", "\ud800", "\udc00", "😀", '"'])))
def test_a_lone_surrogate_is_found_exactly_when_the_decoded_text_is_not_utf8(text: str) -> None:
    body = json.dumps({"k": text}).encode("ascii")  # surrogates escaped, as other clients send them
    # What a JSON parser makes of it (an escaped pair is one character, whatever Python held).
    assert holds_lone_surrogate(body) is not _encodable(json.loads(body)["k"])


def test_escaped_backslashes_are_not_escapes() -> None:
    assert not holds_lone_surrogate(rb'{"k": "\\ud800"}')  # the text \ud800
    assert holds_lone_surrogate(rb'{"k": "\\\ud800"}')  # a backslash, then a surrogate


def test_the_detail_names_the_problem() -> None:
    assert unstorable_text(rb'{"k": "\u0000"}') == NUL_DETAIL
    assert unstorable_text(rb'{"k": "\ud800"}') == SURROGATE_DETAIL
    assert unstorable_text(rb'{"k": "\ud800"}', json_escapes=False) is None  # CSV: no escapes
    assert unstorable_text(b'{"k": "fine"}') is None
