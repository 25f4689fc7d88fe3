"""Every .avsc can read data written with its version at the last commit (BACKWARD)."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemas.avro_schema import AVSC_DIR
from schemas.compat import check_resolution, problems

REPO = AVSC_DIR.parent.parent


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)


def _has_head() -> bool:
    try:
        return _git("rev-parse", "--verify", "HEAD").returncode == 0
    except FileNotFoundError:  # no git executable
        return False


CURRENT = sorted(AVSC_DIR.glob("*/*.avsc"))
pytestmark = pytest.mark.skipif(not _has_head(), reason="not a git repository with commits")


def _at_head(path: Path) -> dict[str, Any] | None:
    shown = _git("show", f"HEAD:{path.relative_to(REPO).as_posix()}")
    return json.loads(shown.stdout) if shown.returncode == 0 else None


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_new_schema_reads_data_written_with_the_committed_one(path: Path) -> None:
    old = _at_head(path)
    if old is None:
        pytest.skip("new since the last commit")
    new = json.loads(path.read_text(encoding="utf-8"))
    assert problems(old, new) == []
    check_resolution(old, new)


def test_no_committed_schema_was_deleted() -> None:
    listed = _git("ls-tree", "-r", "--name-only", "HEAD", "--", AVSC_DIR.relative_to(REPO).as_posix())
    committed = {line for line in listed.stdout.splitlines() if line.endswith(".avsc")}
    present = {p.relative_to(REPO).as_posix() for p in CURRENT}
    assert committed <= present, f"published schemas removed: {sorted(committed - present)}"
