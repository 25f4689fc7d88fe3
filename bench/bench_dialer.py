"""Dialer throughput bench: placements per second through the fake Twilio API (not a test).

The dialer shell (decider + TwilioTelephony over the real twilio client) runs in this process
against tests/support/fake_twilio.py. The fake answers at once and posts its status callbacks
to a local sink, which turns in-progress/completed into the call events the dialer consumes,
so an ended call frees its slot as in production. The broker is left out (its hop cost is in
the event-log bench); the dialer's event sends are counted, not shipped. It reports
placements/s and the peak of live calls per agent and per tenant against their limits.

    .venv/bin/python bench/bench_dialer.py --requests 3000 --agents 4 --limit 25 --tenant-limit 80
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import uvicorn
import uvloop
from fastapi import FastAPI, Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.agents import AgentConfig, AgentVersionPublished
from schemas.calls import CallEnded, TelephonyStatusChanged
from schemas.codec import Codec
from schemas.dialer import CallAttemptStarted, CallRequestCompleted, PlaceCall
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, EventId, TenantId
from streams.dialer.decider import DialerOptions
from streams.dialer.shell import DialerShell
from streams.telephony.twilio_rest import TwilioTelephony
from tests.support.fake_twilio import FakeTwilio, free_port

TENANT = TenantId("bench-tenant")
TOKEN = "bench-token"


def _env(**kw: Any) -> dict[str, Any]:
    return {
        "tenant_id": TENANT,
        "seq": 0,
        "event_id": EventId(str(uuid.uuid4())),
        "occurred_at": datetime.now(UTC),
        "correlation_id": CorrelationId("bench"),
    } | kw


def _serve_fake(port: int) -> None:
    """The fake Twilio API in its own process, as the real one is elsewhere."""

    async def serve() -> None:
        fake = FakeTwilio(TOKEN, answer_hold_s=0.05)
        fake.port = port
        async with fake:
            await asyncio.Event().wait()

    uvloop.run(serve())


async def _wait_for_port(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("fake Twilio did not start")


async def run(requests: int, agents: int, limit: int, tenant_limit: int) -> dict[str, float]:
    codec = Codec.single_object()
    sink_port = free_port()
    sink = FastAPI()
    live: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    started_at: dict[str, float] = {}
    counts = Counter[str]()
    done = asyncio.Event()
    shell: DialerShell

    async def send(topic: str, key: bytes, value: bytes) -> None:
        record = codec.decode(value)
        if isinstance(record, CallAttemptStarted):
            live[record.agent_id] += 1
            live["*"] += 1
            for k in (record.agent_id, "*"):
                peak[k] = max(peak[k], live[k])
        elif isinstance(record, CallRequestCompleted):
            live[record.agent_id] -= 1
            live["*"] -= 1
            counts["completed"] += 1
            if counts["completed"] == requests:
                done.set()

    async def send_and_wait(topic: str, key: bytes, value: bytes) -> None:
        counts["sent_and_waited"] += 1

    @sink.post("/twilio/status")
    async def status(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        query = dict(parse_qsl(urlsplit(str(request.url)).query))
        call_id = CallId(query["call_id"])
        if form["CallStatus"] == "initiated":
            counts["placed"] += 1
        if form["CallStatus"] == "in-progress":
            await shell.apply(
                TelephonyStatusChanged(
                    **_env(call_id=call_id),
                    twilio_call_sid=form["CallSid"],
                    status="in-progress",
                    answered_by="human",
                )
            )
        elif form["CallStatus"] == "completed":
            await shell.apply(CallEnded(**_env(call_id=call_id), reason="caller_hung_up"))
        return Response(status_code=204)

    server = uvicorn.Server(uvicorn.Config(sink, host="127.0.0.1", port=sink_port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    fake_port = free_port()
    child = multiprocessing.get_context("spawn").Process(target=_serve_fake, args=(fake_port,), daemon=True)
    child.start()
    await _wait_for_port(fake_port)
    try:
        telephony = TwilioTelephony(
            "AC" + "0" * 32,
            TOKEN,
            f"http://127.0.0.1:{sink_port}",
            api_base_url=f"http://127.0.0.1:{fake_port}",
        )
        shell = DialerShell(
            codec,
            DialerOptions(tenant_max_concurrent_calls=tenant_limit),
            telephony,
            send=send,
            send_and_wait=send_and_wait,
        )
        agent_ids = [AgentId(f"bench-agent-{i}") for i in range(agents)]
        for i, agent in enumerate(agent_ids):
            config = AgentConfig(
                system_prompt="p",
                voice="v",
                language="en",
                model="m",
                max_duration_s=60,
                silence_timeout_s=0,
                record_calls=False,
                max_concurrent_calls=limit,
                answering_machine_policy="ignore",
                timezone="UTC",
                phone_numbers=(f"+1555000{i:04d}",),
            )
            shell.rebuild(
                [
                    AgentVersionPublished(
                        tenant_id=TENANT,
                        agent_id=agent,
                        seq=2,
                        event_id=derive_event_id(agent, 2),
                        occurred_at=datetime.now(UTC),
                        correlation_id=CorrelationId("bench"),
                        version=1,
                        config=config,
                    )
                ]
            )
        t0 = time.perf_counter()
        for n in range(requests):
            call = CallId(f"bench-{n}")
            started_at[call] = time.perf_counter()
            await shell.apply(
                PlaceCall(
                    **_env(agent_id=agent_ids[n % agents]),
                    to_number=f"+1666{n:07d}",
                    idempotency_key=call,
                    call_id=call,
                )
            )
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - t0
        await shell.drain()
        await telephony.aclose()
    finally:
        child.terminate()
    server.should_exit = True
    await serving
    return {
        "requests": requests,
        "placed": counts["placed"],
        "seconds": round(elapsed, 2),
        "placements_per_s": round(counts["placed"] / elapsed, 1),
        "peak_per_agent": max(peak[a] for a in agent_ids),
        "agent_limit": limit,
        "peak_tenant": peak["*"],
        "tenant_limit": tenant_limit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--limit", type=int, default=25)
    parser.add_argument("--tenant-limit", type=int, default=80)
    args = parser.parse_args()
    result = uvloop.run(run(args.requests, args.agents, args.limit, args.tenant_limit))
    for key, value in result.items():
        print(f"{key:>18}: {value}")
    assert result["peak_per_agent"] <= args.limit
    assert result["peak_tenant"] <= args.tenant_limit


if __name__ == "__main__":
    main()
