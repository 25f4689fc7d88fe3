"""Run the offline Twilio stand-in: `python -m streams.telephony.standin --port N`.

Callbacks and TwiML fetches are signed with VOICE_TWILIO__AUTH_TOKEN, as the edge checks them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from infra.process import free_port, stop_on_signals
from infra.settings import Settings
from streams.telephony.standin.server import ENDED_BY_CALLEE, TwilioStandIn


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m streams.telephony.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--ring-s", type=float, default=1.0, help="how long each call rings")
    parser.add_argument(
        "--unregistered",
        choices=("answer", *ENDED_BY_CALLEE),
        default="no-answer",
        help="what a call to a number no simulated phone waits on does",
    )
    return parser.parse_args(argv)


async def _run(standin: TwilioStandIn) -> None:
    stop = stop_on_signals()
    async with standin:
        print(f"twilio stand-in base_url={standin.base_url}", flush=True)  # for scripts and logs
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    token = Settings().twilio.auth_token.get_secret_value()
    if not token:
        raise SystemExit("set VOICE_TWILIO__AUTH_TOKEN: the stand-in signs its callbacks with it")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    standin = TwilioStandIn(
        token,
        host=args.host,
        port=args.port or free_port(args.host),
        ring_s=args.ring_s,
        unregistered=args.unregistered,
    )
    asyncio.run(_run(standin))


if __name__ == "__main__":
    main()
