"""Every record's current schema reads every version ever published for it (BACKWARD, ADR 22).

The published versions (``schemas/avsc/<domain>/<Name>/<fingerprint>.avsc``) are committed and
never deleted, so this holds on a clean checkout: a change is compared with what was published
before it, not with itself.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemas.avro_schema import AVSC_DIR, avro_schema, fingerprint, version_path, versions_dir
from schemas.compat import check_resolution, problems
from schemas.registry import ALL_RECORDS

REPO = AVSC_DIR.parent.parent
PUBLISHED = [(cls, path) for cls in ALL_RECORDS for path in sorted(versions_dir(cls).glob("*.avsc"))]


@pytest.mark.parametrize(
    ("cls", "path"), PUBLISHED, ids=lambda v: v.stem if isinstance(v, Path) else v.__name__
)
def test_current_schema_reads_data_written_with_every_published_version(cls: type[Any], path: Path) -> None:
    old = json.loads(path.read_text(encoding="utf-8"))
    new = avro_schema(cls)
    assert problems(old, new) == []
    check_resolution(old, new)


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda c: c.__name__)
def test_current_schema_is_published(cls: type[Any]) -> None:
    path = version_path(cls, fingerprint(cls))
    assert path.exists(), f"{path} missing: run python -m schemas.avro_schema --write"


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)


def _has_history() -> bool:
    try:
        return _git("rev-parse", "--verify", "HEAD").returncode == 0
    except FileNotFoundError:  # no git executable
        return False


@pytest.mark.skipif(not _has_history(), reason="not a git repository with commits")
def test_no_published_version_was_ever_deleted() -> None:
    # Every version file any commit added must still be here: deleting one (in this change or in
    # an earlier commit) would hide it from the test above while records written with it remain.
    added = _git(
        "log",
        "HEAD",
        "--format=",
        "--name-only",
        "--diff-filter=A",
        "--",
        AVSC_DIR.relative_to(REPO).as_posix(),
    )
    assert added.returncode == 0, added.stderr
    versions = {line for line in added.stdout.splitlines() if line.count("/") == 4 and line.endswith(".avsc")}
    gone = sorted(v for v in versions if not (REPO / v).exists())
    assert gone == [], f"published versions removed: {gone}"
