"""/api/keys and /api/auth/token: API keys (shown once, revocable) and session tokens."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api import store
from api.auth import ROLES, issue_token, looks_like_jwt
from api.deps import UNAUTHORIZED, Admin, ContextDep, CurrentPrincipal, SessionDep, clock, request_credential
from api.problems import ProblemError

router = APIRouter(tags=["auth"])


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")


class ApiKeyPublic(BaseModel):
    key_id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(BaseModel):
    key_id: str
    role: str
    key: str = Field(description="the secret; shown only in this response")


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post("/api/keys", status_code=201, response_model=ApiKeyCreated)
async def create_key(body: ApiKeyCreate, principal: Admin, session: SessionDep) -> ApiKeyCreated:
    key_id, secret = await store.create_api_key(session, principal.tenant_id, body.role, body.name)
    await store.audit(session, principal, "key.create", "api_key", key_id, detail={"role": body.role})
    await session.commit()
    return ApiKeyCreated(key_id=key_id, role=body.role, key=secret)


@router.get("/api/keys", response_model=list[ApiKeyPublic])
async def list_keys(principal: Admin, session: SessionDep) -> list[ApiKeyPublic]:
    return [ApiKeyPublic(**k) for k in await store.list_api_keys(session, principal.tenant_id)]


@router.delete("/api/keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, principal: Admin, context: ContextDep, session: SessionDep) -> Response:
    if not await store.revoke_api_key(session, principal.tenant_id, key_id):
        raise ProblemError(404, f"no active key {key_id}")
    await store.audit(session, principal, "key.revoke", "api_key", key_id)
    await session.commit()
    context.principals.forget_key(key_id)  # other workers see the revocation within their cache TTL
    return Response(status_code=204)


@router.post("/api/auth/token", response_model=Token)
async def token(principal: CurrentPrincipal, context: ContextDep, request: Request) -> Token:
    """Exchange an API key (in the usual headers) for a short-lived JWT bearer token."""
    secret = context.settings.api.jwt_secret.get_secret_value()
    if not secret:
        raise ProblemError(404, "session tokens are disabled (VOICE_API__JWT_SECRET is not set)")
    # deps' own reading of the credential: the one the principal came from. A token that could renew
    # itself would never expire for as long as someone (a leak included) kept using it.
    if looks_like_jwt(request_credential(request) or ""):
        raise ProblemError(
            401, "a session token cannot be renewed: send an API key to get a new one", headers=UNAUTHORIZED
        )
    ttl = context.settings.api.jwt_ttl_s
    return Token(access_token=issue_token(principal, secret, ttl, clock()), expires_in=ttl)
