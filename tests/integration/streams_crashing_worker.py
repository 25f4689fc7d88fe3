"""A streams worker that dies (os._exit) right after emitting events for one chosen call.

Used by the crash-safety test: it crashes between the event send and the table update.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from infra.settings import Settings
from schemas.ids import CallId
from streams.app import create_app


def _crash_once(call_id: CallId) -> None:
    marker = Path(os.environ["CRASH_MARKER"])
    if call_id == os.environ["CRASH_CALL_ID"] and not marker.exists():
        marker.write_text("crashed")
        os._exit(9)  # no cleanup, no commit, no table write: like SIGKILL at the worst moment


if __name__ == "__main__":
    app = create_app(Settings(), after_emit=_crash_once)
    sys.argv = [sys.argv[0], "worker", "--without-web", "-l", "info"]
    app.main()
