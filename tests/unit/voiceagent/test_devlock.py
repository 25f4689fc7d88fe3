"""One `voiceagent dev` per data directory, and a dead holder leaves no stale lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voiceagent.devlock import DevAlreadyRunningError, hold_data_dir

_HOLD = """
import sys, time
from pathlib import Path
from voiceagent.devlock import hold_data_dir
with hold_data_dir(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(data_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(data_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_dev_on_the_same_directory_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        refused = rf"pid {holder.pid}\) is running with the data directory"
        with pytest.raises(DevAlreadyRunningError, match=refused), hold_data_dir(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    holder.kill()
    holder.wait()
    with hold_data_dir(tmp_path), pytest.raises(DevAlreadyRunningError):  # and now this process holds it
        _held_again(tmp_path)


def _held_again(data_dir: Path) -> None:
    # Another open file description in this process contends like another process would.
    with hold_data_dir(data_dir):
        pass
