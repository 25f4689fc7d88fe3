"""The ``--write``/``--check`` command line shared by the documents generated from the schemas."""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def write_or_check(
    argv: Sequence[str] | None, *, prog: str, description: str | None, path: Path, render: Callable[[], str]
) -> int:
    """Regenerate `path` from `render()` (``--write``) or fail with 1 if it is stale (``--check``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"regenerate {_shown(path)}")
    mode.add_argument("--check", action="store_true", help=f"fail if {_shown(path)} is stale")
    args = parser.parse_args(argv)
    text = render()
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if args.write:
        if current != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        return 0
    if current != text:
        print(f"stale: {path}; run: {prog} --write", file=sys.stderr)
        return 1
    return 0


def _shown(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"
