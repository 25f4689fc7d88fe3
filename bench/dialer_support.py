"""Parts both dialer bench modes share: the fake Twilio child, the status sink, the live-call count."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import uvicorn
import uvloop
from fastapi import FastAPI, Request, Response

from schemas.agents import AgentVersionPublished
from schemas.calls import CallEnded, TelephonyStatusChanged
from schemas.dialer import CallAttemptStarted, CallRequestCompleted, PlaceCall
from schemas.ids import AgentId, CallId, CorrelationId, EventId, TenantId
from tests.support.agents import agent_config, version_published
from tests.support.fake_twilio import FakeTwilio, free_port

TENANT = TenantId("bench-tenant")
TOKEN = "bench-token"

CallFact = TelephonyStatusChanged | CallEnded
OnFact = Callable[[CallFact], Awaitable[None]]


def _env(**kw: Any) -> dict[str, Any]:
    return {
        "tenant_id": TENANT,
        "seq": 0,
        "event_id": EventId(str(uuid.uuid4())),
        "occurred_at": datetime.now(UTC),
        "correlation_id": CorrelationId("bench"),
    } | kw


def agent_versions(agents: int, limit: int) -> list[AgentVersionPublished]:
    """``agents`` agents of the bench tenant, each allowed ``limit`` live calls."""
    return [
        version_published(
            TENANT,
            f"bench-agent-{i}",
            agent_config(f"+1555000{i:04d}", max_concurrent_calls=limit, answering_machine_policy="ignore"),
            correlation_id="bench",
        )
        for i in range(agents)
    ]


def place_call(n: int, agent_id: AgentId) -> PlaceCall:
    call = CallId(f"bench-{n}")
    return PlaceCall(**_env(agent_id=agent_id), to_number=f"+1666{n:07d}", idempotency_key=call, call_id=call)


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


@contextlib.asynccontextmanager
async def fake_twilio() -> AsyncIterator[str]:
    """The fake Twilio API in a child process; yields its base URL."""
    port = free_port()
    child = multiprocessing.get_context("spawn").Process(target=_serve_fake, args=(port,), daemon=True)
    child.start()
    try:
        await _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()


@contextlib.asynccontextmanager
async def status_sink(on_fact: OnFact, counts: Counter[str]) -> AsyncIterator[str]:
    """Twilio's status callbacks, turned into the call facts the dialer consumes; yields the base URL.

    Counts ``initiated`` callbacks as ``counts["placed"]``; in-progress and completed become
    the TelephonyStatusChanged and CallEnded the edge and the calls worker derive in production.
    """
    app = FastAPI()

    @app.post("/twilio/status")
    async def status(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        query = dict(parse_qsl(urlsplit(str(request.url)).query))
        call_id = CallId(query["call_id"])
        if form["CallStatus"] == "initiated":
            counts["placed"] += 1
        if form["CallStatus"] == "in-progress":
            await on_fact(
                TelephonyStatusChanged(
                    **_env(call_id=call_id),
                    twilio_call_sid=form["CallSid"],
                    status="in-progress",
                    answered_by="human",
                )
            )
        elif form["CallStatus"] == "completed":
            await on_fact(CallEnded(**_env(call_id=call_id), reason="caller_hung_up"))
        return Response(status_code=204)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@dataclass
class LiveCalls:
    """Live calls per agent and for the tenant (``*``), folded from the dialer's events in order."""

    live: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def observe(self, record: object) -> None:
        if isinstance(record, CallAttemptStarted):
            for key in (record.agent_id, "*"):
                self.live[key] += 1
                self.peak[key] = max(self.peak[key], self.live[key])
        elif isinstance(record, CallRequestCompleted):
            self.live[record.agent_id] -= 1
            self.live["*"] -= 1
            self.completed += 1
            self._changed.set()

    async def until_completed(self, count: int, timeout_s: float) -> None:
        async def wait() -> None:
            while self.completed < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout_s)


def report(
    requests: int, placed: int, elapsed: float, calls: LiveCalls, limit: int, tenant_limit: int
) -> dict[str, float]:
    return {
        "requests": requests,
        "placed": placed,
        "seconds": round(elapsed, 2),
        "placements_per_s": round(placed / elapsed, 1),
        "peak_per_agent": max((v for k, v in calls.peak.items() if k != "*"), default=0),
        "agent_limit": limit,
        "peak_tenant": calls.peak["*"],
        "tenant_limit": tenant_limit,
    }
