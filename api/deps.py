"""FastAPI dependencies: the database session, the caller, role checks and rate limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import store
from api.auth import Principal, PrincipalCache, RateLimiter, hash_key, looks_like_jwt, verify_token
from api.commands import CommandBus
from api.problems import ProblemError
from infra.settings import Settings


@dataclass
class AppContext:
    """Everything the routes need, built once by create_app's lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    reads: async_sessionmaker[AsyncSession]  # autocommit, for requests that only read
    bus: CommandBus
    limiter: RateLimiter
    blob_dir: Path
    principals: PrincipalCache


# Dependencies are coroutines even when they need not be: FastAPI runs a plain def in a thread pool,
# and that hop costs more than the work they do.
async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


_READ_METHODS = frozenset(("GET", "HEAD"))


async def get_session(request: Request, context: ContextDep) -> AsyncIterator[AsyncSession]:
    """A session for the request; GET and HEAD handlers only read, so theirs runs in autocommit."""
    factory = context.reads if request.method in _READ_METHODS else context.sessions
    async with factory() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def request_credential(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="voiceagent"'}


async def get_principal(request: Request, context: ContextDep, session: SessionDep) -> Principal:
    credential = request_credential(request)
    if credential is None:
        raise ProblemError(
            401, "missing credentials: send Authorization: Bearer <key> or X-API-Key", headers=UNAUTHORIZED
        )
    principal = await _resolve(credential, context, session)
    if principal is None:
        raise ProblemError(401, "invalid, revoked or expired credentials", headers=UNAUTHORIZED)
    wait_s = context.limiter.acquire(principal.key_id)
    if wait_s > 0:
        raise ProblemError(
            429, "rate limit exceeded", headers={"Retry-After": str(max(1, round(wait_s + 0.5)))}
        )
    return principal


async def _resolve(credential: str, context: AppContext, session: AsyncSession) -> Principal | None:
    secret = context.settings.api.jwt_secret.get_secret_value()
    if secret and looks_like_jwt(credential):
        principal = verify_token(credential, secret)  # checked every time: the expiry is exact
        if principal is not None and await _key_is_active(principal, context, session):
            return principal
        return None
    credential_hash = hash_key(credential)
    principal = context.principals.get(credential_hash)
    if principal is None:
        principal = await store.principal_for_key_hash(session, credential_hash)
        if principal is not None:
            context.principals.put(credential_hash, principal)
    return principal


async def _key_is_active(principal: Principal, context: AppContext, session: AsyncSession) -> bool:
    """Whether the key a token was issued for is still active (cached like keys themselves)."""
    cached = "key_id:" + principal.key_id  # cannot collide with a SHA-256 hex digest
    if context.principals.get(cached) is not None:
        return True
    if not await store.key_is_active(session, principal.key_id):
        return False
    context.principals.put(cached, principal)
    return True


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def _require(role: str) -> object:
    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.may(role):
            raise ProblemError(403, f"this needs the {role} role; the key has {principal.role}")
        return principal

    return Depends(check)


Viewer = Annotated[Principal, _require("viewer")]
Operator = Annotated[Principal, _require("operator")]
Admin = Annotated[Principal, _require("admin")]


def clock() -> float:
    return time.time()
