"""API read latency at a fixed request rate, with 1 million call rows in the read model (not a test).

Rows are generated and COPied into a fresh schema (4 tenants, 20 agents each, ~90 days); the API
runs as ``python -m api`` (one uvicorn worker) in a child process; this process sends an open-loop
load (requests start on schedule whether or not earlier ones have answered, so a slow server
cannot hide its queueing) and times each request from its scheduled start.

    .venv/bin/python bench/bench_api.py --rows 1000000 --rate 300 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg

from infra.migrate import upgrade_database
from infra.process import free_port, spawn_bound_child, tail
from infra.settings import Settings
from infra.stack import running_stack

KEY = "va_bench_key_0123456789"
TENANTS = [f"tenant-{i}" for i in range(4)]
START = datetime(2026, 8, 1, tzinfo=UTC)
STATUSES = ["completed"] * 7 + ["no_answer", "failed", "busy"]
COLUMNS = (
    "call_id, tenant_id, direction, from_number, to_number, agent_id, agent_version, status, "
    "started_at, answered_at, ended_at, duration_ms, end_reason, interruptions, tool_calls, "
    "first_agent_audio_ms, last_seq, updated_at"
)


def _row(n: int, rng: random.Random) -> tuple[Any, ...]:
    tenant = TENANTS[n % 4]
    started = START + timedelta(seconds=rng.randrange(90 * 86400))
    status = rng.choice(STATUSES)
    answered = started + timedelta(seconds=3) if status in ("completed", "failed") else None
    talk = rng.randrange(20, 600)
    ended = started + timedelta(seconds=3 + talk)
    return (
        f"call-{n:07d}",
        tenant,
        rng.choice(("inbound", "outbound")),
        f"+1555{rng.randrange(10**7):07d}",
        f"+1415{rng.randrange(10**4):07d}",
        f"agent-{tenant}-{n % 20}",
        1 + n % 3,
        status,
        started,
        answered,
        ended,
        talk * 1000 if answered else 0,
        "caller_hung_up",
        rng.randrange(3),
        rng.randrange(2),
        rng.randrange(400, 1500),
        10,
        ended,
    )


def load_rows(url: str, schema: str, rows: int) -> float:
    rng = random.Random(7)
    started = time.perf_counter()
    with psycopg.connect(url.replace("+psycopg", ""), options=f"-csearch_path={schema}") as conn:
        with conn.cursor() as cursor, cursor.copy(f"COPY call ({COLUMNS}) FROM STDIN") as copy:
            for n in range(rows):
                copy.write_row(_row(n, rng))
        conn.execute("ANALYZE call")
    return time.perf_counter() - started


async def open_loop(
    client: httpx.AsyncClient, paths: list[str], rate: float, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    interval = 1 / rate
    total = int(rate * seconds)
    begin = time.perf_counter() + 0.1

    async def one(i: int) -> None:
        nonlocal errors
        due = begin + i * interval
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            response = await client.get(paths[i % len(paths)])
            errors += response.status_code != 200
        except httpx.TransportError:
            errors += 1
        latencies.append(time.perf_counter() - due)

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - begin
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "requests": total,
        "achieved_rps": total / elapsed,
        "errors": errors,
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "max_ms": latencies[-1] * 1000,
    }


def paths(rows: int, count: int) -> dict[str, list[str]]:
    rng = random.Random(11)
    own = [n for n in (rng.randrange(rows) for _ in range(count * 4)) if n % 4 == 0][:count]
    by_id = [f"/api/calls/call-{n:07d}" for n in own]
    filtered = []
    for _ in range(count):
        day = START + timedelta(days=rng.randrange(80))
        params = (
            f"agent_id=agent-tenant-0-{rng.randrange(20)}&status=completed"
            f"&started_from={day.date().isoformat()}T00:00:00Z"
            f"&started_to={(day + timedelta(days=7)).date().isoformat()}T00:00:00Z&limit=50"
        )
        filtered.append(f"/api/calls?{params}")
    return {"get_call": by_id, "filtered_list": filtered}


async def bench(settings: Settings, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(upgrade_database, settings.database, schema=schema)
    url = settings.database.url or ""
    results: dict[str, Any] = {"rows": args.rows}
    results["copy_load_s"] = await asyncio.to_thread(load_rows, url, schema, args.rows)
    with psycopg.connect(url.replace("+psycopg", ""), options=f"-csearch_path={schema}") as conn:
        conn.execute("INSERT INTO tenant (tenant_id, name) VALUES ('tenant-0', 'bench')")
    port = free_port()
    env = dict(os.environ) | {
        "VOICE_ENV": "test",
        "VOICE_DATA_DIR": str(data_dir),
        "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
        "VOICE_DATABASE__URL": f"{url}?options=-csearch_path%3D{schema}",
        "VOICE_API__PORT": str(port),
        "VOICE_API__BOOTSTRAP_API_KEY": KEY,
        "VOICE_API__BOOTSTRAP_TENANT_ID": "tenant-0",
        "VOICE_API__RATE_LIMIT_PER_S": "100000",
        "VOICE_API__RATE_LIMIT_BURST": "100000",
        "VOICE_LOG_LEVEL": "WARNING",
    }
    log = data_dir / "api.log"
    api = spawn_bound_child([sys.executable, "-m", "api"], log_path=log, env=env, cwd=Path.cwd())
    try:
        base = f"http://127.0.0.1:{port}"
        # Requests beyond 32 in flight wait for a connection; that wait counts in their latency.
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        timeout = httpx.Timeout(60.0)
        headers = {"X-API-Key": KEY}
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=timeout
        ) as client:
            await _wait_up(client, api, log)
            for name, batch in paths(args.rows, 2000).items():
                await open_loop(client, batch, args.rate, 3)  # warm-up: pool, caches, plans
                results[name] = await open_loop(client, batch, args.rate, args.seconds)
    finally:
        api.terminate()
        api.wait(15)
    return results


async def _wait_up(client: httpx.AsyncClient, api: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(200):
        if api.poll() is not None:
            raise RuntimeError(f"python -m api exited:\n{tail(log)}")
        try:
            if (await client.get("/api/calls?limit=1")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"python -m api did not come up:\n{tail(log)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="per endpoint")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as data_dir,
        running_stack(Settings(env="test", data_dir=Path(data_dir)), durable=False) as stack,
    ):
        figures = asyncio.run(bench(stack.settings, args, Path(data_dir)))
    print(json.dumps(figures, indent=2, default=lambda v: round(v, 2)))


if __name__ == "__main__":
    main()
