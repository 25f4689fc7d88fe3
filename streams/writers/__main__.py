"""``python -m streams.writers``: the agent and knowledge writers until SIGTERM/SIGINT.

This runs the plain aiokafka loop (`runner.run_writer`), one instance per writer; the Faust
agents that would spread aggregates over several instances are not built yet.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from infra.kafka import make_producer
from infra.settings import Settings
from schemas.codec import Codec
from streams.writers.runner import agent_spec, knowledge_spec, run_writer

log = logging.getLogger("streams.writers")


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    producer = make_producer(settings.kafka)
    await producer.start()
    codec = Codec.single_object()
    blob_dir = settings.api.blob_dir or settings.data_dir / "blobs"
    try:
        tasks = [
            asyncio.create_task(run_writer(spec, settings.kafka, producer, codec=codec, stop=stop))
            for spec in (agent_spec(), knowledge_spec(blob_dir))
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # one writer ending (a crash) stops the other, so the supervisor sees the exit
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
    finally:
        await producer.stop()


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
