"""Run a service entry point (``python -m ...``) as a child process wired to the test stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.process import spawn_bound_child
from infra.settings import Settings


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a service reads its Settings from: the test stack's addresses and timings."""
    kafka = settings.kafka
    env = dict(os.environ) | {
        "VOICE_ENV": "test",
        "VOICE_DATA_DIR": str(settings.data_dir.resolve()),
        "VOICE_KAFKA__BOOTSTRAP": kafka.bootstrap or "",
        "VOICE_KAFKA__CONSUMER_SESSION_TIMEOUT_MS": str(kafka.consumer_session_timeout_ms),
        "VOICE_KAFKA__CONSUMER_HEARTBEAT_INTERVAL_MS": str(kafka.consumer_heartbeat_interval_ms),
        "VOICE_KAFKA__CONSUMER_REBALANCE_TIMEOUT_MS": str(kafka.consumer_rebalance_timeout_ms),
        "VOICE_DATABASE__URL": settings.database.url or "",
        "VOICE_LOG_LEVEL": "INFO",
    }
    return env | extra


def spawn(
    module: str, args: list[str], settings: Settings, log: Path, **extra: str
) -> subprocess.Popen[bytes]:
    return spawn_bound_child(
        [sys.executable, "-m", module, *args],
        log_path=log,
        env=service_env(settings, **extra),
        cwd=Path(__file__).resolve().parents[3],
    )
