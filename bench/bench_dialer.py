"""Dialer throughput bench: placements per second through the fake Twilio API (not a test).

By default the dialer shell (decider + TwilioTelephony over the real twilio client) runs in this
process against tests/support/fake_twilio.py. The fake answers at once and posts its status
callbacks to a local sink, which turns in-progress/completed into the call events the dialer
consumes, so an ended call frees its slot as in production. The broker is left out (its hop cost
is in the event-log bench); the dialer's event sends are counted, not shipped. It reports
placements/s and the peak of live calls per agent and per tenant against their limits.

With ``--broker`` it measures the dialer as deployed instead (bench/dialer_broker.py): the real
worker (``python -m streams.dialer``) over the embedded broker, fed through the topics.

    .venv/bin/python bench/bench_dialer.py [--broker] --requests 3000 --agents 4 --limit 25 --tenant-limit 80
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dialer_support import (
    TOKEN,
    CallFact,
    LiveCalls,
    agent_versions,
    fake_twilio,
    place_call,
    report,
    status_sink,
)
from schemas.codec import Codec
from streams.dialer.decider import DialerOptions
from streams.dialer.shell import DialerShell
from streams.telephony.twilio_rest import TwilioTelephony


async def run(requests: int, agents: int, limit: int, tenant_limit: int) -> dict[str, float]:
    codec = Codec.single_object()
    calls = LiveCalls()
    counts = Counter[str]()
    shell: DialerShell

    async def send(topic: str, key: bytes, value: bytes) -> None:
        calls.observe(codec.decode(value))

    async def send_and_wait(topic: str, key: bytes, value: bytes) -> None:
        counts["sent_and_waited"] += 1

    async def on_fact(fact: CallFact) -> None:
        await shell.apply(fact)

    async with status_sink(on_fact, counts) as sink, fake_twilio() as api:
        telephony = TwilioTelephony("AC" + "0" * 32, TOKEN, sink, api_base_url=api)
        shell = DialerShell(
            codec,
            DialerOptions(tenant_max_concurrent_calls=tenant_limit),
            telephony,
            send=send,
            send_and_wait=send_and_wait,
        )
        versions = agent_versions(agents, limit)
        shell.rebuild(versions)
        t0 = time.perf_counter()
        for n in range(requests):
            await shell.apply(place_call(n, versions[n % agents].agent_id))
        await calls.until_completed(requests, 600)
        elapsed = time.perf_counter() - t0
        await shell.drain()
        await telephony.aclose()
    return report(requests, counts["placed"], elapsed, calls, limit, tenant_limit)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", action="store_true", help="the real dialer worker over the broker")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--limit", type=int, default=25)
    parser.add_argument("--tenant-limit", type=int, default=80)
    args = parser.parse_args()
    if args.broker:
        from bench.dialer_broker import run_over_broker

        result = run_over_broker(args.requests, args.agents, args.limit, args.tenant_limit)
    else:
        result = uvloop.run(run(args.requests, args.agents, args.limit, args.tenant_limit))
    for key, value in result.items():
        print(f"{key:>18}: {value}")
    assert result["peak_per_agent"] <= args.limit
    assert result["peak_tenant"] <= args.tenant_limit


if __name__ == "__main__":
    main()
