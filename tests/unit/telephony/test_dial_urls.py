"""The URLs the dialer gives Twilio carry their query in key order, which Twilio keeps as signed."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from streams.telephony.port import DialRequest, status_url, voice_url

REQUEST = DialRequest(
    call_id="c-1", tenant_id="t-1", agent_id="a-1", agent_version=3, to_number="+15550002222",
    from_number="+15550001111", time_limit_s=600, record=True,
)  # fmt: skip


@pytest.mark.parametrize(
    "url", [voice_url("https://edge.example", REQUEST), status_url("https://edge.example", REQUEST)]
)
def test_the_query_is_in_key_order(url: str) -> None:
    keys = [key for key, _ in parse_qsl(urlsplit(url).query)]
    assert keys == sorted(keys)


def test_the_voice_url_names_the_call() -> None:
    query = dict(parse_qsl(urlsplit(voice_url("https://edge.example/", REQUEST)).query))
    assert query == {
        "agent_id": "a-1", "agent_version": "3", "call_id": "c-1", "direction": "outbound",
        "record": "true", "tenant_id": "t-1",
    }  # fmt: skip
