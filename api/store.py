"""The API's own tables: tenants, API keys and the audit log (the read models are in projections)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Principal, hash_key, new_key
from projections.models import ApiKey, AuditLog, Tenant


async def ensure_tenant(session: AsyncSession, tenant_id: str, name: str | None = None) -> None:
    await session.execute(
        insert(Tenant).values(tenant_id=tenant_id, name=name or tenant_id).on_conflict_do_nothing()
    )


async def create_api_key(
    session: AsyncSession, tenant_id: str, role: str, name: str, *, secret: str | None = None
) -> tuple[str, str]:
    """(key id, secret); only the hash is stored, so the secret is shown this once."""
    key_id, generated = new_key()
    secret = secret or generated
    await session.execute(
        insert(ApiKey).values(
            key_id=key_id, tenant_id=tenant_id, name=name, role=role, key_hash=hash_key(secret)
        )
    )
    return key_id, secret


async def ensure_bootstrap_key(session: AsyncSession, tenant_id: str, secret: str) -> None:
    """The configured bootstrap admin key exists (idempotent)."""
    await ensure_tenant(session, tenant_id)
    found = await session.execute(select(ApiKey.key_id).where(ApiKey.key_hash == hash_key(secret)))
    if found.scalar_one_or_none() is None:
        await create_api_key(session, tenant_id, "admin", "bootstrap", secret=secret)


async def principal_for_key_hash(session: AsyncSession, key_hash: str) -> Principal | None:
    row = (
        await session.execute(
            select(ApiKey.key_id, ApiKey.tenant_id, ApiKey.role).where(
                ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
            )
        )
    ).one_or_none()
    return None if row is None else Principal(tenant_id=row.tenant_id, key_id=row.key_id, role=row.role)


async def key_is_active(session: AsyncSession, key_id: str) -> bool:
    found = await session.execute(
        select(ApiKey.key_id).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
    )
    return found.scalar_one_or_none() is not None


async def list_api_keys(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    query = select(ApiKey.key_id, ApiKey.name, ApiKey.role, ApiKey.created_at, ApiKey.revoked_at).where(
        ApiKey.tenant_id == tenant_id
    )
    return [dict(r) for r in (await session.execute(query.order_by(ApiKey.created_at))).mappings().all()]


async def revoke_api_key(session: AsyncSession, tenant_id: str, key_id: str) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def audit(
    session: AsyncSession,
    who: Principal,
    action: str,
    resource_type: str,
    resource_id: str,
    *,
    correlation_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await session.execute(
        insert(AuditLog).values(
            tenant_id=who.tenant_id,
            actor=who.key_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            correlation_id=correlation_id,
            detail=detail or {},
        )
    )
