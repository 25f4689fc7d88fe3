"""Run the offline Gemini stand-in: `python -m streams.standin --port N --control-port M --cert-dir DIR`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from infra.process import stop_on_signals
from streams.standin.server import StandIn, StandInSettings

TIMINGS_ENV = "VOICE_STANDIN_TIMINGS"


def _parse(argv: list[str] | None) -> StandInSettings:
    parser = argparse.ArgumentParser(prog="python -m streams.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="TLS port for Live + REST (0: any free)")
    parser.add_argument("--control-port", type=int, default=0, help="plain-HTTP control port (0: any free)")
    parser.add_argument("--cert-dir", type=Path, default=Path(".voiceagent/standin-certs"))
    parser.add_argument("--pace", type=float, default=1.0, help="1.0 real time, 0 as fast as possible")
    parser.add_argument("--silence-ms", type=int, default=500, help="hang-over when setup gives none")
    parser.add_argument("--max-connection-s", type=float, default=None, help="goAway, then close")
    parser.add_argument(
        "--timings",
        action="store_true",
        # The environment too: `voiceagent dev` starts the stand-in, and the system load test
        # (bench/bench_system.py) asks it for timings through the dev stack's environment.
        default=os.environ.get(TIMINGS_ENV) == "1",
        help=f"record audio times (GET /timings); also {TIMINGS_ENV}=1",
    )
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="a model's delays: setup and each answer's first audio"
    )
    parser.add_argument("--api-key", default=None, help="require this key (default: any non-empty key)")
    args = parser.parse_args(argv)
    return StandInSettings(
        cert_dir=args.cert_dir,
        host=args.host,
        port=args.port,
        control_port=args.control_port,
        pace=args.pace,
        silence_ms=args.silence_ms,
        max_connection_s=args.max_connection_s,
        api_key=args.api_key,
        timings=args.timings,
        latency_ms=args.latency_ms,
    )


async def _run(settings: StandInSettings) -> None:
    stop = stop_on_signals()
    async with StandIn(settings) as standin:
        # One parseable line for scripts and the dev stack: where to point the client.
        print(
            f"standin base_url={standin.base_url} control_url={standin.control_url} "
            f"ca_file={standin.certs.ca_file}",
            flush=True,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The stock loop, not uvloop: on uvloop the stand-in used ~3 % less CPU at 50 calls, but it
    # delivered instant answers in denser bursts and the pipeline bench's downlink p99 rose from
    # 22-27 ms to 34-45 ms (bench/RESULTS.md); the stand-in is the bench's model, not its subject.
    asyncio.run(_run(_parse(argv)))


if __name__ == "__main__":
    main()
