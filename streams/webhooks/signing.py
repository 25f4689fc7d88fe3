"""HMAC-SHA256 signatures over a timestamp and the body, as receivers verify them.

Every request is signed with the key of the tenant it belongs to (``tenant_signing_key``),
derived from a platform secret that never leaves the platform: a tenant holds its own key
(``GET /api/webhook-signing-key``) and cannot sign as another tenant (ADR 27).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Voice-Signature"
TIMESTAMP_HEADER = "X-Voice-Timestamp"
SIGNING_ALGORITHM = "HMAC-SHA256"
# Part of every tenant's key: changing it changes every key (a new version of the scheme).
_TENANT_KEY_LABEL = "voiceagent webhook signing v1:"


def tenant_signing_key(platform_secret: str, tenant_id: str) -> str:
    """The tenant's signing key: hex HMAC-SHA256(platform secret, label + tenant id).

    Its hex string is the key integrators verify with (its ASCII bytes are the HMAC key); the
    platform secret cannot be recovered from it, nor another tenant's key computed.
    """
    message = (_TENANT_KEY_LABEL + tenant_id).encode()
    return hmac.new(platform_secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex>`` of HMAC-SHA256(secret, "<timestamp>." + body)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signed_json_headers(secret: str, body: bytes, now: int) -> dict[str, str]:
    """The headers of a signed JSON POST: content type, timestamp and signature."""
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(now),
        SIGNATURE_HEADER: sign(secret, now, body),
    }


def verify(
    secret: str, timestamp: int, body: bytes, signature: str, now: int, tolerance_s: int = 300
) -> bool:
    """Whether ``signature`` is ours for this body and the timestamp is recent (replay guard)."""
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
