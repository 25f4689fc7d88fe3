"""A stored document file does not outlive its document (a deleted document's text stayed on disk
for good), and is kept while the event log may hold its document: a write error does not prove
the broker never stored the command."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import RecordMetadata
from pydantic import SecretStr
from sqlalchemy import text

from api.app import create_app
from api.commands import Sender
from infra.embedded import start_broker
from infra.kafka import make_producer, start_producer
from infra.settings import Settings
from schemas.codec import Codec
from schemas.knowledge import AddDocument
from tests.integration.readside.conftest import migrated_schema, schema_sessions
from tests.integration.readside.platform import make_tenant
from tests.support.call_stream import unique
from tests.support.recording_producer import RecordingProducer, read_back

pytestmark = pytest.mark.integration

DOCUMENT = b"Opening hours are nine to five, every day of the week."


class _AckLost(RecordingProducer):
    """The real producer whose acknowledgement is lost: the broker stores the command, and the
    sender is told the write timed out, as aiokafka says once its request timeout runs out."""

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> RecordMetadata:
        await super().send_and_wait(topic, value, key)
        raise KafkaTimeoutError("the acknowledgement was lost (injected)")


async def _upload(settings: Settings, blobs: Path, producer: Sender) -> httpx.Response:
    """Upload a document too large to keep inline (so it goes to a file) through ``producer``."""
    schema = await migrated_schema(settings)
    api = settings.api.model_copy(
        update={
            "write_wait_s": 0.05,
            "rate_limit_per_s": 10_000.0,
            "jwt_secret": SecretStr("x" * 40),
            "blob_dir": blobs,
            "inline_document_max_bytes": 16,
        }
    )
    async with schema_sessions(settings, schema) as sessions:
        app = create_app(
            settings.model_copy(update={"api": api}), engine=sessions.kw["bind"], producer=producer
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
                return await client.post(
                    f"/api/knowledge/bases/{kb}/documents",
                    params={"title": "hours"},
                    content=DOCUMENT,
                    headers=tenant.operator | {"Content-Type": "text/plain"},
                )


def _files(blobs: Path) -> list[Path]:
    return [p for p in blobs.rglob("*") if p.is_file()]


async def test_an_upload_whose_write_failed_keeps_its_file(settings: Settings, tmp_path: Path) -> None:
    # A broker of its own, stopped once the producer has started: the send fails as aiokafka
    # fails with the broker away (no metadata within the request timeout).
    broker = start_broker(tmp_path / "broker")
    try:
        producer = make_producer(
            settings.kafka.model_copy(update={"bootstrap": broker.address}), request_timeout_ms=1500
        )
        await start_producer(producer)
    finally:
        await asyncio.to_thread(broker.stop)
    try:
        response = await _upload(settings, tmp_path / "blobs", producer)
    finally:
        await producer.stop()
    assert response.status_code == 503, response.text[:300]
    assert "Retry-After" in response.headers  # the broker is away: the client may try again
    # A failed write may still have been stored (an acknowledgement that timed out, the next
    # test): its writer would need the file.
    assert len(_files(tmp_path / "blobs")) == 1


async def test_an_upload_whose_acknowledgement_was_lost_keeps_the_file_its_stored_command_names(
    settings: Settings, producer: AIOKafkaProducer, codec: Codec, tmp_path: Path
) -> None:
    sender = _AckLost(producer)
    response = await _upload(settings, tmp_path / "blobs", sender)
    assert response.status_code == 503, response.text[:300]
    assert "Retry-After" in response.headers  # a timed-out write: the client may try again
    [kept] = _files(tmp_path / "blobs")
    # The broker has the command the API was told had failed, and the file it names is there.
    [sent] = sender.sent
    command = codec.decode_as((await read_back(settings.kafka, sent)).value, AddDocument)
    assert command.content is None
    assert command.content_uri == kept.resolve().as_uri()
    assert kept.read_bytes() == DOCUMENT
