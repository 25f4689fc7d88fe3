"""Cancelling a call Twilio says is already over is done, not a failed cancel: through the real
twilio client, which raises its TwilioRestException for the API's answer."""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from schemas.codec import Codec
from streams.dialer.dialling import Dialling
from streams.telephony.twilio_rest import TwilioTelephony
from tests.support.twilio_calls_api import calls_api
from tests.unit.dialer.test_dialer_shell_writes import Journal

ACCOUNT = "AC" + "0" * 32
SID = "CA" + "1" * 32
NOT_IN_PROGRESS = "Call is not in-progress. Cannot redirect."


def _calls_api(status: int, code: int, message: str, updates: list[str]) -> AbstractAsyncContextManager[str]:
    """Twilio's calls API answering every update of a call with ``status`` and error ``code``."""

    def answer(sid: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        updates.append(form["Status"])
        more_info = f"https://www.twilio.com/docs/errors/{code}"
        return status, {"code": code, "message": message, "more_info": more_info, "status": status}

    return calls_api(answer)


async def _end(base_url: str, how: str) -> None:
    telephony = TwilioTelephony(ACCOUNT, "token", "https://edge.example", api_base_url=base_url)
    journal = Journal()
    dialling = Dialling(
        Codec.single_object(),
        telephony,
        send_and_wait=journal.send_and_wait,
        send_backoff_s=(0.001,),
        hang_up_backoff_s=(0.001, 0.001),
    )
    try:
        await (dialling.cancel(SID) if how == "cancel" else dialling.hang_up(SID))
    finally:
        await telephony.aclose()


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, 21220, NOT_IN_PROGRESS),
        (404, 20404, f"The requested resource /Calls/{SID}.json was not found"),
    ],
)
@pytest.mark.parametrize("how", ["cancel", "hang_up"])
async def test_a_call_twilio_says_is_already_over_is_ended_and_said_at_info(
    status: int, code: int, message: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    updates: list[str] = []
    caplog.set_level(logging.INFO)
    async with _calls_api(status, code, message, updates) as base_url:
        await _end(base_url, how)
    assert updates == ["canceled" if how == "cancel" else "completed"]  # once: nothing to try again
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(SID in line and "already over" in line and str(code) in line for line in said), said


async def test_a_cancel_twilio_refuses_for_another_reason_is_still_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    updates: list[str] = []
    async with _calls_api(401, 20003, "Authenticate", updates) as base_url:
        await _end(base_url, "cancel")
    assert updates == ["canceled"]
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "left to ring out" in failures[0]
