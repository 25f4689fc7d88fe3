"""A stored document file does not outlive its document (a deleted document's text stayed on disk
for good), and is kept while the event log may hold its document: a write error does not prove
the broker never stored the command."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr
from sqlalchemy import text

from api.app import create_app
from api.knowledge import _forget_blob
from infra.settings import Settings
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.platform import make_tenant
from tests.support.call_stream import unique

pytestmark = pytest.mark.integration


class _BrokerAway:
    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> None:
        raise KafkaConnectionError("broker away")


async def test_an_upload_whose_write_failed_keeps_its_file(settings: Settings, tmp_path: Path) -> None:
    schema = await migrated_schema(settings)
    api = settings.api.model_copy(
        update={
            "write_wait_s": 0.05,
            "rate_limit_per_s": 10_000.0,
            "jwt_secret": SecretStr("x" * 40),
            "blob_dir": tmp_path / "blobs",
            "inline_document_max_bytes": 16,
        }
    )
    async with schema_sessions(settings, schema) as sessions:
        app = create_app(
            settings.model_copy(update={"api": api}), engine=sessions.kw["bind"], producer=_BrokerAway()
        )
        tenant = await make_tenant(sessions)
        kb = unique("kb")
        async with sessions() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO knowledge_base (kb_id, tenant_id, name, created_at)"
                    " VALUES (:k, :t, 'kb', now())"
                ),
                {"k": kb, "t": tenant.tenant_id},
            )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                response = await client.post(
                    f"/api/knowledge/bases/{kb}/documents",
                    params={"title": "hours"},
                    content=b"Opening hours are nine to five, every day of the week.",
                    headers=tenant.operator | {"Content-Type": "text/plain"},
                )
    assert response.status_code == 503, response.text[:300]
    # An acknowledgement that timed out may hide a stored command: its writer needs the file.
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1


def test_only_files_inside_the_blob_directory_are_ever_deleted(tmp_path: Path) -> None:
    blobs, outside = tmp_path / "blobs", tmp_path / "elsewhere.txt"
    (blobs / "t" / "kb").mkdir(parents=True)
    inside = blobs / "t" / "kb" / "doc 1.txt"
    inside.write_text("x")
    outside.write_text("y")
    _forget_blob(blobs, outside.resolve().as_uri())
    _forget_blob(blobs, "s3://bucket/doc.txt")
    _forget_blob(blobs, None)
    assert outside.exists()
    _forget_blob(blobs, inside.resolve().as_uri())  # percent-encoded space in the URI
    assert not inside.exists()
