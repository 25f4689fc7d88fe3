"""The retry decision after a failed Live connection: when to drop the handle, when to give up."""

from __future__ import annotations

import pytest

from streams.sessions.recovery import ModelFailure, Retry, retry


def _decide(failure: ModelFailure, failures: int, *, resuming: bool = True) -> Retry:
    return retry(failure, failures, resuming=resuming, max_reconnects=3)


def test_retry_unknown_handle_at_setup_starts_a_fresh_session_at_once() -> None:
    decision = _decide(ModelFailure(1008, "session handle not found", in_setup=True), 1)
    assert decision == Retry(give_up=False, drop_handle=True)


@pytest.mark.parametrize(("failures", "dropped"), [(1, False), (2, True)])
def test_retry_other_setup_failures_drop_the_handle_the_second_time(failures: int, dropped: bool) -> None:
    assert _decide(ModelFailure(1011, "internal", in_setup=True), failures).drop_handle is dropped


def test_retry_keeps_the_handle_after_a_failure_mid_session_or_when_not_resuming() -> None:
    assert not _decide(ModelFailure(1008, "handle not found"), 2).drop_handle
    assert not _decide(ModelFailure(1008, "handle", in_setup=True), 2, resuming=False).drop_handle


@pytest.mark.parametrize(("failures", "gives_up"), [(3, False), (4, True)])
def test_retry_gives_up_after_max_reconnects(failures: int, gives_up: bool) -> None:
    assert _decide(ModelFailure(1011, "internal"), failures).give_up is gives_up


def test_retry_quota_is_retried_once() -> None:
    quota = ModelFailure(1011, "RESOURCE_EXHAUSTED: quota")
    assert [_decide(quota, n).give_up for n in (1, 2)] == [False, True]


@pytest.mark.parametrize("failure", [ModelFailure(1008, "API key not valid"), ModelFailure(403, "denied")])
def test_retry_refused_key_gives_up_at_once(failure: ModelFailure) -> None:
    assert _decide(failure, 1).give_up
