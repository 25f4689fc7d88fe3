"""API read latency at a fixed request rate, with 1 million call rows in the read model (not a test).

Rows are generated and COPied into a fresh schema (4 tenants, 20 agents each, ~90 days); the API
runs as ``python -m api`` (one uvicorn worker) in a child process; a load-generator process of its
own (a bare HTTP/1.1 client on uvloop, at most 32 connections) sends an open-loop load (requests
start on schedule whether or not earlier ones have answered, so a slow server cannot hide its
queueing) and times each request from its scheduled start. ``--profile`` records the API with py-spy.

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


class _Client:
    """A minimal HTTP/1.1 keep-alive client: far cheaper per request than httpx, so the load
    generator (its own process) measures the server rather than itself."""

    def __init__(self, port: int, headers: dict[str, str], connections: int) -> None:
        self.port = port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(connections)

    async def get(self, path: str) -> int:
        async with self.slots:
            reader, writer = self.free.pop() if self.free else await self._open()
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{self.extra}\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
            except BaseException:
                writer.close()
                raise
            self.free.append((reader, writer))
            return status

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    def close(self) -> None:
        for _, writer in self.free:
            writer.close()


async def open_loop(client: _Client, paths: list[str], rate: float, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    interval = 1 / rate
    total = int(rate * seconds)
    begin = time.perf_counter() + 0.1

    async def one(i: int, due: float) -> None:
        nonlocal errors
        try:
            errors += await client.get(paths[i % len(paths)]) != 200
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors += 1
        latencies.append(time.perf_counter() - due)

    tasks = []
    for i in range(total):  # open loop: each request starts on schedule, answered or not
        due = begin + i * interval
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
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


async def _generate(spec: dict[str, Any]) -> dict[str, float]:
    # Requests beyond this many in flight wait for a connection; that wait counts in their latency.
    client = _Client(spec["port"], {"X-API-Key": KEY}, connections=32)
    try:
        await open_loop(client, spec["paths"], spec["rate"], 3)  # warm-up: pool, caches, plans
        return await open_loop(client, spec["paths"], spec["rate"], spec["seconds"])
    finally:
        client.close()


def loadgen_main(spec_path: Path) -> None:
    """The load generator's own process: reads its spec, writes its figures next to it."""
    import uvloop

    spec = json.loads(spec_path.read_text())
    figures = uvloop.run(_generate(spec))
    spec_path.with_suffix(".out").write_text(json.dumps(figures))


async def run_loadgen(
    data_dir: Path, name: str, spec: dict[str, Any], api_pid: int, profile: Path | None
) -> dict[str, Any]:
    spec_path = data_dir / f"load-{name}.json"
    spec_path.write_text(json.dumps(spec))
    argv = [sys.executable, __file__, "--loadgen", str(spec_path)]
    gen = spawn_bound_child(argv, log_path=data_dir / "loadgen.log", cwd=Path.cwd())
    spy = None
    if profile is not None:
        await asyncio.sleep(3.2)  # profile the measured part only, not the warm-up
        out = profile.with_name(f"{profile.stem}-{name}.raw")
        spy_argv = [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "200", "-f", "raw"]
        spy_argv += ["-o", str(out), "-d", str(int(spec["seconds"])), "--pid", str(api_pid)]
        spy = spawn_bound_child(spy_argv, log_path=data_dir / "py-spy.log", cwd=Path.cwd())
    code = await asyncio.to_thread(gen.wait)
    if spy is not None:
        await asyncio.to_thread(spy.wait)
    if code != 0:
        raise RuntimeError(f"load generator failed:\n{tail(data_dir / 'loadgen.log')}")
    figures: dict[str, Any] = json.loads(spec_path.with_suffix(".out").read_text())
    return figures


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
        await _wait_up(port, api, log)
        for name, batch in paths(args.rows, 2000).items():
            spec = {"port": port, "paths": batch, "rate": args.rate, "seconds": args.seconds}
            cpu_before = _cpu_s(api.pid)
            results[name] = await run_loadgen(data_dir, name, spec, api.pid, args.profile)
            sent = int(args.rate * 3) + int(args.rate * args.seconds)  # warm-up and measured
            results[name]["api_cpu_ms_per_request"] = (_cpu_s(api.pid) - cpu_before) * 1000 / sent
    finally:
        api.terminate()
        api.wait(15)
    return results


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used: steadier than latency on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_up(port: int, api: subprocess.Popen[bytes], log: Path) -> None:
    client = _Client(port, {"X-API-Key": KEY}, connections=1)
    try:
        for _ in range(200):
            if api.poll() is not None:
                raise RuntimeError(f"python -m api exited:\n{tail(log)}")
            try:
                if await client.get("/api/calls?limit=1") == 200:
                    return
            except (OSError, asyncio.IncompleteReadError):
                pass
            await asyncio.sleep(0.1)
    finally:
        client.close()
    raise RuntimeError(f"python -m api did not come up:\n{tail(log)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="per endpoint")
    parser.add_argument(
        "--profile", type=Path, help="py-spy raw profile of the API while measured: PATH-<endpoint>.raw"
    )
    parser.add_argument("--loadgen", type=Path, help=argparse.SUPPRESS)  # the load generator's process
    args = parser.parse_args()
    if args.loadgen is not None:
        loadgen_main(args.loadgen)
        return
    with (
        tempfile.TemporaryDirectory() as data_dir,
        running_stack(Settings(env="test", data_dir=Path(data_dir)), durable=False) as stack,
    ):
        figures = asyncio.run(bench(stack.settings, args, Path(data_dir)))
    print(json.dumps(figures, indent=2, default=lambda v: round(v, 2)))


if __name__ == "__main__":
    main()
