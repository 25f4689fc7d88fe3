"""One `voiceagent dev` per data directory: a second one would fight the first over its database."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = "dev.lock"


class DevAlreadyRunningError(RuntimeError):
    """Another `voiceagent dev` holds this data directory."""


@contextlib.contextmanager
def hold_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` for this process until the block ends, or raise DevAlreadyRunningError.

    An flock, not a pid file: the kernel drops it when its holder dies, however it dies, so a
    killed dev never leaves a stale lock behind.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise DevAlreadyRunningError(
                f"another `voiceagent dev` (pid {holder}) is running with the data directory "
                f"{data_dir}. Stop it first (Ctrl-C in its terminal), or give this one its own "
                "directory with VOICE_DATA_DIR."
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
