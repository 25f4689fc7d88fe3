"""Fixtures: running stand-ins (fast and real-time paced) and google-genai clients pointed at them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google import genai

from streams.standin.client import make_genai_client
from streams.standin.server import StandIn, StandInSettings


@pytest.fixture(scope="session")
def standin_cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standin-certs")


@pytest.fixture(scope="session")
async def standin(standin_cert_dir: Path) -> AsyncIterator[StandIn]:
    """Answers as fast as it can (pace 0), with a short hang-over so turns end quickly."""
    async with StandIn(StandInSettings(cert_dir=standin_cert_dir, pace=0.0, silence_ms=300)) as running:
        yield running


@pytest.fixture(scope="session")
async def paced_standin(standin_cert_dir: Path) -> AsyncIterator[StandIn]:
    """Talks in real time, so that a test can barge in while it speaks."""
    settings = StandInSettings(cert_dir=standin_cert_dir, pace=1.0, silence_ms=300)
    async with StandIn(settings) as running:
        yield running


@pytest.fixture(scope="session")
def genai_client(standin: StandIn) -> genai.Client:
    return make_genai_client(standin.base_url, "test-key", standin.certs.ca_file)


@pytest.fixture(scope="session")
def paced_client(paced_standin: StandIn) -> genai.Client:
    return make_genai_client(paced_standin.base_url, "test-key", paced_standin.certs.ca_file)


@pytest.fixture
def call_key() -> str:
    return f"call-{uuid.uuid4().hex[:12]}"
