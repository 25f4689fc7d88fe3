"""API end to end for knowledge (upload, search) and calls (events to read models to API, commands)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from infra.kafka import make_consumer
from infra.settings import Settings
from schemas.catalog import CALL_EVENTS, DIALER_REQUESTS
from schemas.codec import Codec
from schemas.dialer import PlaceCall
from tests.integration.helpers import drain
from tests.integration.readside.call_stream import T0, call_events, eventually, produce, unique
from tests.integration.readside.platform import Tenant, make_tenant, platform

pytestmark = pytest.mark.integration

REFUNDS = """# Refunds

Our refund policy is simple: unopened items can be returned within 30 days for a full refund.
Opened items get store credit only.

# Shipping

Orders ship within two business days from the Rotterdam warehouse.
"""


@pytest.fixture
async def client(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    codec: Codec,
    tmp_path: Path,
) -> AsyncIterator[httpx.AsyncClient]:
    api = settings.api.model_copy(
        update={"write_wait_s": 20.0, "inline_document_max_bytes": 2048, "blob_dir": tmp_path}
    )
    async with platform(
        settings.model_copy(update={"api": api}), engine, sessions, producer, codec
    ) as client:
        yield client


@pytest.fixture
async def tenant(sessions: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessions)


async def test_rs_knowledge_upload_then_search_finds_the_right_chunk(
    client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
) -> None:
    base = await client.post("/api/knowledge/bases", json={"name": "Help centre"}, headers=tenant.operator)
    assert base.status_code == 201, base.text
    kb_id = base.json()["kb_id"]
    upload = await client.post(
        f"/api/knowledge/bases/{kb_id}/documents",
        params={"title": "Refunds and shipping"},
        content=REFUNDS.encode(),
        headers=tenant.operator | {"Content-Type": "text/markdown"},
    )
    assert upload.status_code == 201, upload.text
    big_html = (
        "<html><body>"
        + "<p>Warranty covers manufacturing defects for two years.</p>" * 200
        + "</body></html>"
    )
    large = await client.post(
        f"/api/knowledge/bases/{kb_id}/documents",
        params={"title": "Warranty"},
        content=big_html.encode(),
        headers=tenant.operator | {"Content-Type": "text/html"},
    )
    assert large.status_code == 201, large.text
    # 201 means the document is in the read model; its chunks are indexed right after, in batches.
    document_url = f"/api/knowledge/bases/{kb_id}/documents/{large.json()['document_id']}"

    async def chunked() -> bool:
        document = await client.get(document_url, headers=tenant.viewer)
        return bool(document.status_code == 200 and document.json()["chunk_count"] > 1)

    await eventually(chunked)
    assert await asyncio.to_thread(lambda: list(tmp_path.rglob("*.html"))), (
        "a large document is stored by reference in the blob dir"
    )

    hits = (
        await client.get("/api/knowledge/search", params={"q": "refund policy"}, headers=tenant.viewer)
    ).json()
    assert hits[0]["title"] == "Refunds and shipping"
    assert "<mark>refund</mark>" in hits[0]["snippet"].lower()
    assert all(h["title"] != "Warranty" for h in hits)
    warranty = (
        await client.get("/api/knowledge/search", params={"q": "warranty defects"}, headers=tenant.viewer)
    ).json()
    assert warranty
    assert warranty[0]["title"] == "Warranty"

    other = await client.get("/api/knowledge/search", params={"q": "refund policy"}, headers=tenant.admin)
    assert other.status_code == 200
    unsupported = await client.post(
        f"/api/knowledge/bases/{kb_id}/documents",
        params={"title": "x"},
        content=b"%PDF-1.4",
        headers=tenant.operator | {"Content-Type": "application/pdf"},
    )
    assert unsupported.status_code == 415
    removed = await client.delete(
        f"/api/knowledge/bases/{kb_id}/documents/{upload.json()['document_id']}", headers=tenant.operator
    )
    assert removed.status_code == 204
    after = (
        await client.get("/api/knowledge/search", params={"q": "refund policy"}, headers=tenant.viewer)
    ).json()
    assert after == []


async def test_rs_knowledge_is_tenant_scoped_and_oversized_uploads_get_413(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    other = await make_tenant(sessions)
    kb_id = (
        await client.post("/api/knowledge/bases", json={"name": "Mine"}, headers=tenant.operator)
    ).json()["kb_id"]
    assert (await client.get(f"/api/knowledge/bases/{kb_id}", headers=other.viewer)).status_code == 404
    too_big = b"a" * (settings.api.max_upload_bytes + 1)
    response = await client.post(
        f"/api/knowledge/bases/{kb_id}/documents",
        params={"title": "huge"},
        content=too_big,
        headers=tenant.operator | {"Content-Type": "text/plain"},
    )
    assert response.status_code == 413
    assert response.json()["status"] == 413


async def test_rs_call_events_show_up_in_the_calls_api_and_analytics(
    client: httpx.AsyncClient, tenant: Tenant, producer: AIOKafkaProducer, codec: Codec
) -> None:
    agent, call_id = unique("agent"), unique("call")
    await produce(producer, codec, CALL_EVENTS.name, call_events(tenant.tenant_id, call_id, agent), call_id)

    async def ended() -> bool:
        found = await client.get(f"/api/calls/{call_id}", headers=tenant.viewer)
        return found.status_code == 200 and found.json()["status"] == "completed"

    await eventually(ended)
    listed = (
        await client.get(
            "/api/calls", params={"agent_id": agent, "status": "completed"}, headers=tenant.viewer
        )
    ).json()
    assert [c["call_id"] for c in listed["items"]] == [call_id]
    assert (await client.get("/api/calls", params={"number": "+15550001111"}, headers=tenant.viewer)).json()[
        "items"
    ]
    timeline = (await client.get(f"/api/calls/{call_id}/timeline", headers=tenant.viewer)).json()
    assert [e["seq"] for e in timeline] == list(range(1, 11))
    transcript = (await client.get(f"/api/calls/{call_id}/transcript", headers=tenant.viewer)).json()
    assert transcript[0]["text"] == "I want to check my order status"
    tools = (await client.get(f"/api/calls/{call_id}/tool-calls", headers=tenant.viewer)).json()
    assert tools[0]["status"] == "completed"
    assert (await client.get(f"/api/calls/{call_id}/recording", headers=tenant.viewer)).json()[
        "format"
    ] == "wav"

    day = T0.date().isoformat()
    stats = await client.get(
        "/api/analytics", params={"date_from": day, "date_to": day}, headers=tenant.viewer
    )
    assert stats.status_code == 200, stats.text
    summary = stats.json()["summary"]
    assert (summary["calls"], summary["completed"], summary["success_rate"]) == (1, 1, 1.0)
    assert summary["avg_duration_ms"] == 60_000
    assert stats.json()["daily"][0]["agent_id"] == agent
    assert max(p["concurrent_calls"] for p in stats.json()["concurrency"]) == 1

    ended_again = await client.post(f"/api/calls/{call_id}/end", json={}, headers=tenant.operator)
    assert ended_again.status_code == 409
    assert (
        await client.get(f"/api/calls/{call_id}", headers=(await _stranger(client, tenant)))
    ).status_code in (401, 404)


async def _stranger(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    return {"X-API-Key": "va_not_a_key"}


async def test_rs_place_call_validates_and_writes_place_call(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, codec: Codec
) -> None:
    config = {"system_prompt": "Call people.", "voice": "Puck"}
    agent_id = (
        await client.post("/api/agents", json={"name": "Dialer", "config": config}, headers=tenant.admin)
    ).json()["agent_id"]
    bad = await client.post(
        "/api/calls", json={"agent_id": agent_id, "to_number": "0612345678"}, headers=tenant.operator
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "to_number"
    viewer = await client.post(
        "/api/calls", json={"agent_id": agent_id, "to_number": "+31612345678"}, headers=tenant.viewer
    )
    assert viewer.status_code == 403

    consumer = make_consumer(settings.kafka, DIALER_REQUESTS.name, group_id=unique("rs-dialer"))
    await consumer.start()
    try:
        placed = await client.post(
            "/api/calls", json={"agent_id": agent_id, "to_number": "+31612345678"}, headers=tenant.operator
        )
        assert placed.status_code == 202  # nothing dials in this test, so the call never appears
        call_id = placed.headers["Location"].rsplit("/", 1)[-1]
        seen = await drain(
            consumer, lambda records: any(_place_call(codec, r.value, call_id) for r in records)
        )
    finally:
        await consumer.stop()
    [request] = [r for r in seen if _place_call(codec, r.value, call_id)]
    assert request.key == agent_id.encode()


def _place_call(codec: Codec, value: bytes, call_id: str) -> bool:
    record = codec.decode(value)
    return isinstance(record, PlaceCall) and record.call_id == call_id
