"""A process that starts the embedded stack, prints its pids, and waits to be killed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from infra.settings import Settings
from infra.stack import start_stack

if __name__ == "__main__":
    stack = start_stack(Settings(env="test", data_dir=Path(sys.argv[1])), durable=False)
    print(json.dumps({s.name: s.pid for s in stack.services}), flush=True)
    while True:
        time.sleep(60)
