"""Children started by `dev`: their priority is lowered when asked, never otherwise."""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

import pytest

from infra.process import spawn_bound_child

_REPORT_NICENESS = "import os; print(os.nice(0))"


@pytest.mark.parametrize("nice", [0, 5])
def test_a_child_runs_at_the_niceness_it_was_given(tmp_path: Path, nice: int) -> None:
    log = tmp_path / "child.log"
    child = spawn_bound_child([sys.executable, "-c", _REPORT_NICENESS], log_path=log, nice=nice)
    assert child.wait(timeout=30) == 0
    assert int(log.read_text().strip()) == min(19, os.nice(0) + nice)  # 19 is the floor


def test_a_negative_niceness_is_refused_before_the_child_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nice must be 0 or more"):
        spawn_bound_child([sys.executable, "-c", "pass"], log_path=tmp_path / "child.log", nice=-1)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_a_child_run_as_a_user_has_its_group_and_none_of_ours(tmp_path: Path) -> None:
    # Left in root's group, the embedded PostgreSQL was refused by a root-owned directory
    # (pytest's 0o701 temporary directories) whose group bits then applied to it.
    user = "nobody"
    entry = pwd.getpwnam(user)
    log = tmp_path / "child.log"
    report = ["/bin/sh", "-c", "id -u; id -g; id -G"]  # ids, then every group it is in
    child = spawn_bound_child(report, log_path=log, user=user, cwd=Path("/"))
    assert child.wait(timeout=30) == 0, log.read_text()
    assert log.read_text().split() == [str(entry.pw_uid), str(entry.pw_gid), str(entry.pw_gid)]
