"""The Twilio adapter's hang-up: every failure is a DialError saying whether trying again may work."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from infra.process import free_port
from streams.telephony.port import DialError
from streams.telephony.twilio_rest import TwilioTelephony
from tests.support.twilio_calls_api import calls_api

SID = "AC" + "0" * 32


def _api(status: int, code: int | None = None) -> AbstractAsyncContextManager[str]:
    """A local stand-in of the calls API answering every update with ``status``."""

    def answer(sid: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if status == 200:
            return status, {"sid": sid, "status": "completed"}
        return status, {"code": code, "message": "no", "status": status}

    return calls_api(answer)


async def _hang_up(base_url: str) -> None:
    telephony = TwilioTelephony(SID, "token", "https://edge.example", api_base_url=base_url)
    try:
        await telephony.hang_up("CA123")
    finally:
        await telephony.aclose()


async def test_an_unreachable_api_is_a_retryable_dial_error() -> None:
    with pytest.raises(DialError) as raised:
        await _hang_up(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert raised.value.retryable


@pytest.mark.parametrize(
    ("status", "code", "retryable"), [(503, 20503, True), (429, 20429, True), (401, 20003, False)]
)
async def test_a_refused_hang_up_says_whether_to_try_again(status: int, code: int, retryable: bool) -> None:
    async with _api(status, code) as base_url:
        with pytest.raises(DialError) as raised:
            await _hang_up(base_url)
    assert (raised.value.status, raised.value.retryable) == (status, retryable)


@pytest.mark.parametrize("status", [200, 404])
async def test_a_call_hung_up_or_already_gone_is_not_an_error(status: int) -> None:
    async with _api(status, 20404) as base_url:
        await _hang_up(base_url)
