"""``python -m api``: the REST API under uvicorn on settings.api.host and port (one worker)."""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from infra.settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # uvicorn handles SIGTERM/SIGINT itself: it stops accepting, finishes requests, runs the lifespan exit.
    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="uvloop",  # both come with uvicorn[standard]; named so a missing one fails loudly
        http="httptools",
    )


if __name__ == "__main__":
    main()
