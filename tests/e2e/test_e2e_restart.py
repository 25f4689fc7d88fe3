"""`voiceagent dev` stopped with Ctrl-C and started again keeps every call in the API.

This one runs the dev stack fully embedded (its own Tansu and PostgreSQL in its own data dir),
as a newcomer would: the in-memory broker comes back empty, and the platform must notice and
restore the log from its archive without losing or duplicating anything in the read models.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from infra.process import free_port
from voiceagent.devfile import DevAddresses
from voiceagent.simulate import simulate_call
from voiceagent.timeline import load_events

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]


def _start(data_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    (data_dir / "dev.json").unlink(missing_ok=True)
    with (data_dir / "dev.out").open("ab") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "voiceagent.cli", "dev"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 150
    while not (data_dir / "dev.json").exists():
        assert dev.poll() is None, (data_dir / "dev.out").read_text()[-3000:]
        assert time.monotonic() < deadline, (data_dir / "dev.out").read_text()[-3000:]
        time.sleep(0.5)
    return dev


def _stop(dev: subprocess.Popen[bytes]) -> None:
    dev.send_signal(signal.SIGINT)  # what Ctrl-C does
    dev.wait(timeout=60)


def _calls(addresses: DevAddresses) -> list[str]:
    response = httpx.get(
        f"{addresses.api_url}/api/calls", headers={"Authorization": f"Bearer {addresses.api_key}"}, timeout=10
    )
    return [call["call_id"] for call in response.json()["items"] if call["ended_at"]]


def test_e2e_restart_keeps_every_call_and_restores_the_log(tmp_path: Path) -> None:
    edge_port = free_port()
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "VOICE_DATA_DIR": str(tmp_path),
        "VOICE_EDGE__PORT": str(edge_port),
        "VOICE_EDGE__BRIDGE_PORT": str(free_port()),
        "VOICE_API__PORT": str(free_port()),
        "VOICE_TWILIO__PUBLIC_BASE_URL": f"http://127.0.0.1:{edge_port}",
        "VOICE_ARCHIVE__ROLL_SECONDS": "1",
    }
    for name in ("VOICE_KAFKA__BOOTSTRAP", "VOICE_DATABASE__URL"):
        env.pop(name, None)
    dev = _start(tmp_path, env)
    try:
        addresses = DevAddresses.read(tmp_path)
        outcome = asyncio.run(
            simulate_call(
                addresses, Console(quiet=True), agent="demo", turns=["Hello there."], wav=None,
                outbound=False, reply_timeout_s=30,
            )
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while outcome.call_id not in _calls(addresses):
            assert time.monotonic() < deadline, "the call never reached the read model"
            time.sleep(0.5)
        time.sleep(2)  # let the archiver roll its files (VOICE_ARCHIVE__ROLL_SECONDS=1)
        before = _raw_events(addresses, outcome.call_id)
    finally:
        _stop(dev)

    dev = _start(tmp_path, env)
    try:
        addresses = DevAddresses.read(tmp_path)
        assert outcome.call_id in _calls(addresses)
        assert "restored" in (tmp_path / "dev.out").read_text()
        from infra.settings import KafkaSettings

        events = asyncio.run(load_events(KafkaSettings(bootstrap=addresses.bootstrap), outcome.call_id))
        kinds = [type(e).__name__ for e in events]
        assert kinds[0] == "CallReceived"
        assert "CallEnded" in kinds
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        # The services go on from the restored log's end: the calls worker does not decide the
        # call again (each event once in the log), and no session reopens it (nothing after
        # its end, such as a refused bridge's GeminiSessionClosed).
        time.sleep(8)
        after = _raw_events(addresses, outcome.call_id)
        assert len(after) == len(before), (len(before), len(after))
        assert kinds[-1] not in ("GeminiSessionClosed", "GeminiSessionOpened"), kinds
        assert [type(e).__name__ for e in after][-1] == [type(e).__name__ for e in before][-1]
    finally:
        _stop(dev)


def _raw_events(addresses: DevAddresses, call_id: str) -> list[object]:
    """Every record of the call on the events topic, duplicates included."""
    from infra.eventlog.reading import EventFilter, read_range
    from infra.settings import KafkaSettings
    from schemas.catalog import CALL_EVENTS

    async def read() -> list[object]:
        kafka = KafkaSettings(bootstrap=addresses.bootstrap)
        return [d.record async for d in read_range(kafka, CALL_EVENTS.name, EventFilter(call_id=call_id))]

    return asyncio.run(read())
