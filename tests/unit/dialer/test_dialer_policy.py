"""Pure dialling policies: E.164, calling windows across zones and midnight, back-off."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.dialer.policy import RetryPolicy, is_e164, machine_detection_for, parse_window
from streams.sessions.live_config import DEFAULT_CONFIG


@pytest.mark.parametrize("number", ["+14155550100", "+442071838750", "+12"])
def test_e164_numbers_pass(number: str) -> None:
    assert is_e164(number)


@pytest.mark.parametrize(
    "number",
    [
        "14155550100",
        "+0123",
        "+1415555010000000",
        "+1 415 555",
        "",
        "+14155550100\n",
        "+1\u0665\u0665\u0665\u0661\u0662\u0663\u0664\u0665\u0666\u0667",  # Arabic-Indic digits
    ],
)
def test_other_strings_fail(number: str) -> None:
    assert not is_e164(number)


def test_a_window_is_read_in_the_agents_zone_across_daylight_saving() -> None:
    window = parse_window("09:00-17:00", "Europe/Berlin")
    assert window is not None
    winter = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)  # 09:00 CET
    summer = datetime(2026, 7, 15, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert window.contains(winter)
    assert window.contains(summer)
    assert not window.contains(winter - timedelta(minutes=1))
    assert window.next_open(winter - timedelta(hours=2)) == winter


def test_a_window_may_wrap_midnight() -> None:
    window = parse_window("22:00-06:00", "UTC")
    assert window is not None
    assert window.contains(datetime(2026, 1, 1, 23, 0, tzinfo=UTC))
    assert window.contains(datetime(2026, 1, 1, 5, 59, tzinfo=UTC))
    assert not window.contains(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "zone"), [("9-17", "UTC"), ("09:00-17:00", "Mars/Olympus"), ("25:00-26:00", "UTC")]
)
def test_bad_windows_are_refused(text: str, zone: str) -> None:
    with pytest.raises(ValueError, match=r"window|zone"):
        parse_window(text, zone)


def test_no_window_means_any_time() -> None:
    assert parse_window(None, "UTC") is None
    assert parse_window("  ", "UTC") is None


@given(st.integers(min_value=1, max_value=30))
def test_back_off_grows_and_is_capped(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=100, base_s=5, factor=2, cap_s=300)
    assert policy.delay(attempt) <= policy.delay(attempt + 1) <= timedelta(seconds=300)


def test_no_retry_after_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.retry_at(2, now) is not None
    assert policy.retry_at(3, now) is None


def test_a_window_in_other_scripts_digits_is_refused() -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_window("\u0660\u0669:00-18:00", "UTC")


@pytest.mark.parametrize(
    ("policy", "message", "mode"),
    [
        ("leave_message", "Please call us back.", "DetectMessageEnd"),  # after the beep
        ("leave_message", None, "Enable"),  # nothing to leave: it hangs up
        ("hang_up", None, "Enable"),  # the earliest verdict
        ("ignore", None, None),  # no detection, no delay before the call connects
    ],
)
def test_machine_detection_follows_the_answering_machine_policy(
    policy: str, message: str | None, mode: str | None
) -> None:
    config = dataclasses.replace(DEFAULT_CONFIG, answering_machine_policy=policy, voicemail_message=message)
    assert machine_detection_for(config) == mode
