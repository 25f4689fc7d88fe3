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
from api.auth import Principal, RateLimiter, looks_like_jwt, verify_token
from api.commands import CommandBus
from api.problems import ProblemError
from infra.settings import Settings


@dataclass
class AppContext:
    """Everything the routes need, built once by create_app's lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    bus: CommandBus
    limiter: RateLimiter
    blob_dir: Path


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_session(context: ContextDep) -> AsyncIterator[AsyncSession]:
    async with context.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def _credential(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="voiceagent"'}


async def get_principal(request: Request, context: ContextDep, session: SessionDep) -> Principal:
    credential = _credential(request)
    if credential is None:
        raise ProblemError(
            401, "missing credentials: send Authorization: Bearer <key> or X-API-Key", headers=_UNAUTHORIZED
        )
    principal = await _resolve(credential, context, session)
    if principal is None:
        raise ProblemError(401, "invalid, revoked or expired credentials", headers=_UNAUTHORIZED)
    wait_s = context.limiter.acquire(principal.key_id)
    if wait_s > 0:
        raise ProblemError(
            429, "rate limit exceeded", headers={"Retry-After": str(max(1, round(wait_s + 0.5)))}
        )
    return principal


async def _resolve(credential: str, context: AppContext, session: AsyncSession) -> Principal | None:
    secret = context.settings.api.jwt_secret.get_secret_value()
    if secret and looks_like_jwt(credential):
        principal = verify_token(credential, secret)
        if principal is not None and await store.key_is_active(session, principal.key_id):
            return principal
        return None
    return await store.principal_for_key(session, credential)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def _require(role: str) -> object:
    def check(principal: CurrentPrincipal) -> Principal:
        if not principal.may(role):
            raise ProblemError(403, f"this needs the {role} role; the key has {principal.role}")
        return principal

    return Depends(check)


Viewer = Annotated[Principal, _require("viewer")]
Operator = Annotated[Principal, _require("operator")]
Admin = Annotated[Principal, _require("admin")]


def clock() -> float:
    return time.time()
