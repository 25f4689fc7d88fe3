"""Pure auth parts: role ranks, session tokens and the per-key rate limiter."""

from __future__ import annotations

import time

from api.agent_versions import config_diff
from api.auth import Principal, RateLimiter, issue_token, verify_token


def test_rs_roles_are_ranked() -> None:
    operator = Principal(tenant_id="t", key_id="k", role="operator")
    assert operator.may("viewer")
    assert operator.may("operator")
    assert not operator.may("admin")


def test_rs_tokens_round_trip_and_expire() -> None:
    who = Principal(tenant_id="t", key_id="k", role="admin")
    token = issue_token(who, "s3cret-s3cret-s3cret-s3cret-s3cret", 60, now=time.time())
    assert verify_token(token, "s3cret-s3cret-s3cret-s3cret-s3cret") == who
    assert verify_token(token, "another-secret-another-secret-xx") is None
    expired = issue_token(who, "s3cret-s3cret-s3cret-s3cret-s3cret", 60, now=1_000_000_000)
    assert verify_token(expired, "s3cret-s3cret-s3cret-s3cret-s3cret") is None


def test_rs_rate_limiter_allows_bursts_then_asks_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") > 0
    assert limiter.acquire("other") == 0.0
    now[0] += 0.5
    assert limiter.acquire("k") == 0.0


def test_rs_config_diff_lists_leaf_changes() -> None:
    before = {"voice": "Puck", "tools": [], "limits": {"a": 1, "b": 2}}
    after = {"voice": "Kore", "tools": [], "limits": {"a": 1, "b": 3}}
    assert config_diff(before, after) == [("limits.b", 2, 3), ("voice", "Puck", "Kore")]
