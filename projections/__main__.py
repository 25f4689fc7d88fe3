"""``python -m projections``: fold the event topics into PostgreSQL until SIGTERM/SIGINT.

A rebuild goes into a fresh schema with a fresh group:
``python -m projections --migrate --schema rebuild_1 --group-prefix rebuild-1``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from infra.process import stop_on_signals
from infra.settings import Settings
from projections.service import PROJECTIONS, ServiceOptions, run_projections


def parse(argv: list[str] | None = None) -> ServiceOptions:
    parser = argparse.ArgumentParser(prog="python -m projections", description=__doc__)
    parser.add_argument("--migrate", action="store_true", help="apply the migrations first")
    parser.add_argument("--schema", help="read models in this PostgreSQL schema (default: search path)")
    parser.add_argument("--only", action="append", choices=PROJECTIONS, help="run only these (repeatable)")
    parser.add_argument("--group-prefix", default="projection", help="consumer groups are PREFIX.NAME")
    parser.add_argument("--topic", help="read this topic instead of the catalog's (one projection only)")
    parser.add_argument("--max-records", type=int, default=1000, help="records per transaction at most")
    args = parser.parse_args(argv)
    return ServiceOptions(
        only=tuple(args.only or PROJECTIONS),
        schema=args.schema,
        migrate=args.migrate,
        group_prefix=args.group_prefix,
        topic=args.topic,
        max_records=args.max_records,
    )


async def run(settings: Settings, options: ServiceOptions) -> None:
    stop = stop_on_signals()
    await run_projections(settings, options, stop)


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(settings, options))


if __name__ == "__main__":
    main()
