"""``python -m streams.writers``: one Faust worker of the agent and knowledge writers.

Run as many as the command topics have partitions; Faust spreads the aggregates between them
and moves each partition's state with it (its table changelog). Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse

from infra.settings import Settings
from streams.faust_app import run_worker
from streams.writers.app import DEFAULT_APP_ID, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.writers", description=__doc__)
    parser.add_argument("--app-id", default=DEFAULT_APP_ID, help="Faust app id (its consumer group)")
    args = parser.parse_args(argv)
    settings = Settings()
    app = create_app(settings, app_id=args.app_id)
    run_worker(app, settings)


if __name__ == "__main__":
    main()
