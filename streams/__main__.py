"""`python -m streams`: run a streams worker with settings from the environment."""

from __future__ import annotations

import sys

from infra.settings import Settings
from streams.app import create_app


def main() -> None:
    """Start one Faust worker (the web server is off; health comes from the log and the group)."""
    settings = Settings()
    app = create_app(settings)
    sys.argv = [sys.argv[0], "worker", "--without-web", "-l", settings.log_level.lower()[:4]]
    app.main()


if __name__ == "__main__":
    main()
