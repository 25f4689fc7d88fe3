"""Pure auth parts: role ranks, session tokens, the principal cache and the per-key rate limiter."""

from __future__ import annotations

import time

from api.agent_versions import config_diff
from api.auth import Principal, PrincipalCache, RateLimiter, issue_token, verify_token


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


def test_rs_principal_cache_forgets_entries_after_the_ttl() -> None:
    now = [0.0]
    cache = PrincipalCache(ttl_s=5.0, clock=lambda: now[0])
    who = Principal(tenant_id="t", key_id="k", role="viewer")
    cache.put("hash-1", who)
    now[0] = 4.9
    assert cache.get("hash-1") == who
    now[0] = 5.0
    assert cache.get("hash-1") is None


def test_rs_principal_cache_forgets_a_revoked_key_and_its_tokens_at_once() -> None:
    cache = PrincipalCache(ttl_s=5.0, clock=lambda: 0.0)
    revoked = Principal(tenant_id="t", key_id="k1", role="admin")
    kept = Principal(tenant_id="t", key_id="k2", role="admin")
    cache.put("hash-of-k1", revoked)
    cache.put("key_id:k1", revoked)
    cache.put("hash-of-k2", kept)
    cache.forget_key("k1")
    assert cache.get("hash-of-k1") is None
    assert cache.get("key_id:k1") is None
    assert cache.get("hash-of-k2") == kept


def test_rs_principal_cache_stays_bounded_and_a_zero_ttl_disables_it() -> None:
    cache = PrincipalCache(ttl_s=5.0, max_entries=2, clock=lambda: 0.0)
    for n in range(3):
        cache.put(f"h{n}", Principal(tenant_id="t", key_id=f"k{n}", role="viewer"))
    assert cache.get("h0") is None  # the oldest made room
    assert cache.get("h2") is not None
    off = PrincipalCache(ttl_s=0.0)
    off.put("h", Principal(tenant_id="t", key_id="k", role="viewer"))
    assert off.get("h") is None
