"""Schemathesis against the OpenAPI schema of a running `python -m api`: no input gets a 5xx."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from infra.process import free_port, tail
from infra.settings import Settings
from tests.integration.readside.call_stream import eventually, unique
from tests.integration.readside.conftest import migrated_schema
from tests.integration.readside.subprocess_service import spawn

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


async def test_rs_schemathesis_finds_no_server_error(settings: Settings, tmp_path: Path) -> None:
    schema = await migrated_schema(settings)
    port, key = free_port(), f"va_{unique('fuzz')}"
    log = tmp_path / "api.log"
    api = spawn(
        "api",
        [],
        settings,
        log,
        VOICE_DATABASE__URL=f"{settings.database.url}?options=-csearch_path%3D{schema}",
        VOICE_API__PORT=str(port),
        VOICE_API__BOOTSTRAP_API_KEY=key,
        VOICE_API__BOOTSTRAP_TENANT_ID=unique("fuzz-tenant"),
        VOICE_API__JWT_SECRET="fuzz-" * 8,
        VOICE_API__WRITE_WAIT_S="0.05",
        VOICE_API__RATE_LIMIT_PER_S="100000",
        VOICE_API__RATE_LIMIT_BURST="100000",
        VOICE_API__BLOB_DIR=str(tmp_path / "blobs"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: _up(base, api, log), timeout_s=30)
        run = await asyncio.to_thread(
            subprocess.run,
            [
                str(SCHEMATHESIS),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--phases",
                "examples,fuzzing",
                "--max-examples",
                "8",
                "--seed",
                "4",
                "--workers",
                "2",
                "--no-shrink",
                "--generation-database",
                "none",
                "--request-timeout",
                "10",
                "--header",
                f"X-API-Key: {key}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    finally:
        api.terminate()
        await asyncio.to_thread(api.wait, 15)
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}\napi log:\n{tail(log, 40)}"
    # uvicorn shuts down gracefully, then re-raises the signal it got (exit status -SIGTERM).
    assert api.returncode in (0, -signal.SIGTERM), tail(log, 40)
    assert "Application shutdown complete" in tail(log, 5)


async def _up(base: str, api: subprocess.Popen[bytes], log: Path) -> bool:
    if api.poll() is not None:
        raise AssertionError(f"python -m api exited with {api.returncode}:\n{tail(log, 40)}")
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{base}/openapi.json")).status_code == 200
    except httpx.TransportError:
        return False
