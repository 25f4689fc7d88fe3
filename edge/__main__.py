"""``python -m edge``: one edge node (public app + audio bridge) until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import asyncio
import logging

from edge.server import EdgeServer
from infra.process import fast_loop_factory, stop_on_signals
from infra.settings import Settings


async def run(settings: Settings) -> None:
    server = EdgeServer(settings)
    stop = stop_on_signals()
    await server.start()
    try:
        await stop.wait()
        logging.getLogger("edge").info("signal received: draining")
        await server.drain()
    finally:
        await server.stop()


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # uvloop (part of uvicorn[standard]): a cheaper event loop per frame (bench/RESULTS.md).
    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        runner.run(run(settings))


if __name__ == "__main__":
    main()
