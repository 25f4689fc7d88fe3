"""`python -m streams`: run a streams worker with settings from the environment."""

from __future__ import annotations

import logging

import mode.loop

from infra.settings import Settings
from streams.app import create_app
from streams.faust_app import run_worker


def main() -> None:
    """Start one Faust worker (the web server is off; health comes from the log and the group)."""
    settings = Settings()
    # websockets decides per connection whether to build debug records for every frame; a
    # worker relaying 50 audio messages a second per call must never be at DEBUG there.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    # uvloop, as `faust -L uvloop` would select it (the edge runs on it too): compiled
    # transports, TLS and selector for the two sockets every call keeps busy. It must be
    # chosen before Faust creates its loop.
    mode.loop.use("uvloop")
    app = create_app(settings)
    run_worker(app, settings)


if __name__ == "__main__":
    main()
