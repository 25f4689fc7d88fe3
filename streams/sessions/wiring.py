"""Builds a worker's session machinery from Settings: Gemini client, directory, tools, sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from google.genai import types
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from infra.db import make_engine
from infra.settings import Settings, is_placeholder_secret
from projections.queries import search_chunks
from streams.sessions.session import LiveConnector, LiveSession
from streams.sessions.tools import WebhookTools
from streams.standin.client import genai_client_for


def live_connector(settings: Settings) -> LiveConnector:
    """Opens Live sessions with the real google-genai client (Google, or the offline stand-in)."""
    gemini = settings.gemini
    client = genai_client_for(gemini)

    def connect(model: str, config: dict[str, Any]) -> AbstractAsyncContextManager[LiveSession]:
        return client.aio.live.connect(model=model, config=types.LiveConnectConfig.model_validate(config))

    return connect


def knowledge_search(
    settings: Settings,
) -> tuple[
    Callable[[str, str, tuple[str, ...], int], Awaitable[list[dict[str, Any]]]] | None, AsyncEngine | None
]:
    """The read side's ranked search, when a database is configured; and its engine to dispose."""
    if settings.database.url is None:
        return None, None
    engine = make_engine(settings.database)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def search(tenant_id: str, query: str, kb_ids: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
        async with sessions() as session:
            rows = await search_chunks(session, tenant_id, query, kb_ids=list(kb_ids), limit=limit)
        return [dict(row) for row in rows]

    return search, engine


def webhook_tools(settings: Settings) -> WebhookTools:
    """The client and platform secret for agents' webhook tools; private addresses only in dev and test.

    Each request is signed with its tenant's key derived from the secret (ADR 27), never with it.
    """
    streams = settings.streams
    secret = streams.tool_webhook_secret.get_secret_value()
    if settings.env not in ("dev", "test") and is_placeholder_secret(secret):
        # Checked where it is used; the API checks it too: it derives tenants' keys from it.
        raise ValueError(
            f"VOICE_STREAMS__TOOL_WEBHOOK_SECRET is empty or a known default; set a real secret "
            f"for env={settings.env!r}"
        )
    reach_private = streams.tool_webhooks_reach_private
    if reach_private is None:
        reach_private = settings.env in ("dev", "test")
    # One pooled client per worker; each request is bounded by its tool's own timeout.
    client = httpx.AsyncClient(follow_redirects=False, limits=httpx.Limits(max_connections=100))
    return WebhookTools(client=client, secret=secret, allow_private=reach_private)
