"""SIGKILL of the process that started the embedded stack leaves no broker or postgres behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _processes_mentioning(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs Linux /proc")
def test_sigkill_of_the_parent_leaves_no_services_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "orphan-check"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.stack_child", str(data_dir)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert child.stdout is not None
    pids = json.loads(child.stdout.readline())
    assert set(pids) == {"tansu", "postgres"}
    assert _processes_mentioning(str(data_dir)), "postgres should be running with our data dir"

    child.send_signal(signal.SIGKILL)
    child.wait()

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = [pid for pid in pids.values() if _alive(pid)] + _processes_mentioning(str(data_dir))
        if not left:
            return
        time.sleep(0.1)
    pytest.fail(f"processes outlived their parent: {left}")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
