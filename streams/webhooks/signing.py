"""HMAC-SHA256 signatures over a timestamp and the body, as receivers verify them."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Voice-Signature"
TIMESTAMP_HEADER = "X-Voice-Timestamp"


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
