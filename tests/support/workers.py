"""Launching a session worker (`python -m streams`) against an offline Gemini stand-in."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from infra.settings import Settings

ROOT = Path(__file__).parents[2]


def start_streams_worker(
    settings: Settings,
    log: Path,
    *,
    app_id: str,
    gemini_base_url: str,
    gemini_ca_file: str,
    worker_id: str = "worker-1",
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A worker on the settings' broker and database; its output goes to ``log``, its data next to it."""
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "VOICE_ENV": "test",
        "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
        "VOICE_KAFKA__PARTITIONS_OVERRIDE": str(settings.kafka.partitions_override or ""),
        "VOICE_DATABASE__URL": settings.database.url or "",
        "VOICE_STREAMS__APP_ID": app_id,
        "VOICE_STREAMS__WORKER_ID": worker_id,
        "VOICE_GEMINI__BASE_URL": gemini_base_url,
        "VOICE_GEMINI__CA_FILE": gemini_ca_file,
        "VOICE_GEMINI__API_KEY": "offline-test-key",
        "VOICE_DATA_DIR": str(log.parent),
    }
    env |= extra_env or {}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "streams"], cwd=ROOT, env=env, stdout=out, stderr=out)
