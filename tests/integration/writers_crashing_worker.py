"""A writers worker that dies (os._exit) after emitting the events of one aggregate's second command.

Used by the crash-safety test: it crashes between the event send and the table update, once
the table already holds the aggregate's state from its first command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from infra.settings import Settings
from streams.writers.app import create_app

_emitted: Counter[str] = Counter()


def _crash_on_second_command(aggregate: str) -> None:
    marker = Path(os.environ["CRASH_MARKER"])
    _emitted[aggregate] += 1
    if aggregate == os.environ["CRASH_AGGREGATE"] and _emitted[aggregate] == 2 and not marker.exists():
        marker.write_text("crashed")
        os._exit(9)  # no cleanup, no commit, no table write: like SIGKILL at the worst moment


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--app-id", required=True)
    app = create_app(Settings(), app_id=parser.parse_args().app_id, after_emit=_crash_on_second_command)
    sys.argv = [sys.argv[0], "worker", "--without-web", "-l", "info"]
    app.main()
