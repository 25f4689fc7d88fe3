"""Webhook signatures: HMAC-SHA256 over timestamp and body, with a replay window."""

from __future__ import annotations

import hashlib
import hmac

from streams.webhooks.signing import sign, verify


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("k", 1700000000, b"{}") == f"v1={expected}"


def test_verify_refuses_a_changed_body_a_wrong_key_and_an_old_timestamp() -> None:
    sig = sign("k", 1000, b"body")
    assert verify("k", 1000, b"body", sig, now=1010)
    assert not verify("k", 1000, b"body!", sig, now=1010)
    assert not verify("other", 1000, b"body", sig, now=1010)
    assert not verify("k", 1000, b"body", sig, now=2000)
