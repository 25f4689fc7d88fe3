"""API keys, roles, session tokens and per-key rate limits (pure parts; storage is in api.store)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt

ROLES = ("viewer", "operator", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}
JWT_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key (or a token issued for one) of a tenant, with a role."""

    tenant_id: str
    key_id: str
    role: str

    def may(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]


def hash_key(key: str) -> str:
    """Keys are 256-bit random secrets, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(key id, secret key) for a new API key."""
    key_id = "key_" + secrets.token_hex(8)
    return key_id, f"va_{secrets.token_urlsafe(32)}"


def issue_token(principal: Principal, secret: str, ttl_s: int, now: float) -> str:
    claims = {
        "sub": principal.key_id,
        "tenant": principal.tenant_id,
        "role": principal.role,
        "iat": int(now),
        "exp": int(now) + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def verify_token(token: str, secret: str) -> Principal | None:
    """The principal of a valid, unexpired token, else None."""
    try:
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        return None
    role = claims.get("role")
    if role not in _RANK or not isinstance(claims.get("tenant"), str):
        return None
    return Principal(tenant_id=claims["tenant"], key_id=str(claims["sub"]), role=role)


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and not credential.startswith("va_")


@dataclass
class PrincipalCache:
    """Active credentials seen in the last ``ttl_s`` seconds, so most requests skip the key lookup.

    Only successful lookups are kept. A key revoked through this process is forgotten at once;
    one revoked elsewhere (another worker, SQL) is refused within ``ttl_s`` seconds.
    """

    ttl_s: float
    max_entries: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[Principal, float]] = field(default_factory=dict)

    def get(self, credential_hash: str) -> Principal | None:
        entry = self._entries.get(credential_hash)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            del self._entries[credential_hash]
            return None
        return entry[0]

    def put(self, credential_hash: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest; dicts keep insertion order
        self._entries[credential_hash] = (principal, self.clock() + self.ttl_s)

    def forget_key(self, key_id: str) -> None:
        """Drop the key and every token issued for it."""
        for credential_hash in [h for h, (p, _) in self._entries.items() if p.key_id == key_id]:
            del self._entries[credential_hash]


@dataclass
class RateLimiter:
    """A token bucket per key: ``rate`` requests a second on average, bursts up to ``burst``."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def acquire(self, key: str) -> float:
        """0 when the request may proceed, else the seconds to wait before retrying."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate
