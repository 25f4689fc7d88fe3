"""Fixtures for conversation tests: the Gemini stand-in and an edge node on real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from edge.server import EdgeServer
from edge.telephony import RecordingTelephony
from infra.process import free_port
from infra.settings import Settings
from streams.standin.server import StandIn, StandInSettings
from tests.integration.conversation.calls import AUTH_TOKEN


@pytest.fixture
async def standin(tmp_path: Path) -> AsyncIterator[StandIn]:
    async with StandIn(StandInSettings(cert_dir=tmp_path / "certs", pace=0.0)) as running:
        yield running


@pytest.fixture
async def edge(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[EdgeServer, Settings]]:
    port = free_port()
    edge_settings = settings.edge.model_copy(
        update={"port": port, "bridge_port": free_port(), "recordings_dir": tmp_path / "rec"}
    )
    twilio = settings.twilio.model_copy(
        update={"public_base_url": f"http://127.0.0.1:{port}", "auth_token": SecretStr(AUTH_TOKEN)}
    )
    edge_only = settings.model_copy(update={"edge": edge_settings, "twilio": twilio})
    server = EdgeServer(edge_only, telephony=RecordingTelephony())
    await server.start()
    try:
        yield server, edge_only
    finally:
        await server.drain(deadline_s=0)
        await server.stop()
