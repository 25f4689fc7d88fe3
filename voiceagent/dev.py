"""`voiceagent dev`: the whole platform on one machine, embedded broker and database by default."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from infra.migrate import upgrade_database
from infra.process import free_port, spawn_bound_child, stop_child
from infra.settings import Settings, TwilioSettings
from infra.stack import Stack, start_stack
from infra.topics import ensure_topics
from voiceagent.devfile import FILE_NAME as DEV_FILE
from voiceagent.devfile import DevAddresses
from voiceagent.devlock import hold_data_dir
from voiceagent.freshness import reconcile_fresh_broker
from voiceagent.seed import DEMO_NUMBER, seed_demo_agent

# Started by module name, in this order, so this composition root need not import them.
SERVICES: tuple[tuple[str, list[str]], ...] = (
    ("edge", ["-m", "edge"]),
    ("streams worker", ["-m", "streams"]),
    ("writers", ["-m", "streams.writers"]),
    ("dialer", ["-m", "streams.dialer"]),
    ("webhooks", ["-m", "streams.webhooks"]),
    ("summary", ["-m", "streams.summary"]),
    ("projections", ["-m", "projections"]),
    ("api", ["-m", "api"]),
    ("archiver", ["-m", "voiceagent.cli", "archive", "run"]),
)
ARCHIVER = "archiver"
EDGE = "edge"
# The services that record how a call ended: the calls worker (the streams worker, which also
# runs the sessions) and the dialer, which reads the calls' outcomes for its attempts.
CALL_RECORDERS = ("streams worker", "dialer")

# Ctrl-C with a call live: the edge gives it this long to end by itself before it ends it
# (edge_shutdown); production's 20 s is a rolling deploy's, too long to wait at a desk. An
# explicit VOICE_EDGE__DRAIN_DEADLINE_S wins.
DEV_DRAIN_DEADLINE_S = 5.0
# How long the edge may take to stop beyond its drain deadline: ending its calls (up to 5 s
# for them to close), then its HTTP server, bridge and producer, each bounded by a few seconds.
EDGE_STOP_MARGIN_S = 20.0
# Between stopping one stage and the next: time for the next to read and record what the
# stopped one wrote last (their fetch waits are tens of ms; a busy machine is slower).
RECORD_GRACE_S = 1.0

STREAMS_WORKER = "streams"  # the service `--session-workers` starts several of

# Off the call path: they build read models, place outbound calls, deliver webhooks, summarise
# and archive, and a few seconds' lag costs no caller anything. On one machine they run at a
# lower CPU priority (`--background-nice`), so that when the CPU is short the edge, the session
# workers and the broker get it first: read models catch up later, lost audio never comes back
# (ADR 16).
BACKGROUND_SERVICES = frozenset({"writers", "dialer", "webhooks", "summary", "projections", "archiver"})
DEFAULT_BACKGROUND_NICE = 10


@dataclass(frozen=True, slots=True)
class PlannedChild:
    """One service process `dev` starts: its label, arguments, log file and extra environment."""

    label: str
    argv: list[str]
    log_name: str
    env: dict[str, str] = field(default_factory=dict)
    nice: int = 0


def planned_children(
    session_workers: int = 1, background_nice: int = DEFAULT_BACKGROUND_NICE
) -> list[PlannedChild]:
    """Every service once, the streams worker ``session_workers`` times, in start order."""
    planned = []
    for name, argv in SERVICES:
        module = argv[1]
        if module != STREAMS_WORKER or session_workers == 1:
            nice = background_nice if name in BACKGROUND_SERVICES else 0
            planned.append(PlannedChild(name, argv, f"{module}.log", nice=nice))
            continue
        for n in range(1, session_workers + 1):  # each its own id (and state dir, unless one is set)
            env = {"VOICE_STREAMS__WORKER_ID": f"worker-{n}"}
            planned.append(PlannedChild(f"{name} {n}", argv, f"{module}-{n}.log", env))
    return planned


@dataclass
class Running:
    """What `dev` started, for the status table and for a clean stop."""

    stack: Stack
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    log_paths: dict[str, Path] = field(default_factory=dict)
    """Each child's log file, by label."""
    edge_drain_s: float = DEV_DRAIN_DEADLINE_S
    """The edge's drain deadline as started: its stop must be given longer than that."""

    def stop(self, console: Console) -> None:
        # A second Ctrl-C must not cut the orderly stop short (children would be killed anyway).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        console.print("stopping...")
        for stage, group in enumerate(stop_stages(self.children)):
            if stage and any(proc.poll() is None for _, proc in group):
                time.sleep(RECORD_GRACE_S)  # the next stage reads what the last one wrote
            for name, proc in group:
                if name == EDGE:  # killed mid-drain, its calls would stay "in progress" for good
                    stop_child(proc, timeout=self.edge_drain_s + EDGE_STOP_MARGIN_S)
                else:
                    stop_child(proc)
        self.stack.stop()
        console.print("[green]stopped cleanly[/]")


def stop_stages(
    children: list[tuple[str, subprocess.Popen[bytes]]],
) -> list[list[tuple[str, subprocess.Popen[bytes]]]]:
    """The order `dev` stops its children in, stage by stage (ADR 20).

    1. The edge: it stops taking calls and ends the live ones (edge_shutdown).
    2. The calls workers, still running, record those ends (CallEnded); the dialer
       records the outcomes of its attempts from them.
    3. The rest, in reverse start order (the stand-ins, started first, after the services
       that call them).
    4. The archiver last: what the others write while they stop must reach the archive,
       which is the log the next start restores. It flushes what it holds when it stops.
    """
    edge = [c for c in children if c[0] == EDGE]
    workers = [c for c in children if c[0].startswith(CALL_RECORDERS[0])]
    dialer = [c for c in children if c[0] == CALL_RECORDERS[1]]
    archiver = [c for c in children if c[0] == ARCHIVER]
    first = {id(c) for c in [*edge, *workers, *dialer, *archiver]}
    rest = [c for c in reversed(children) if id(c) not in first]
    return [stage for stage in (edge, workers, dialer, rest, archiver) if stage]


T = TypeVar("T")


class ServiceStartError(RuntimeError):
    """A service `dev` starts could not start, or exited before the platform was up."""


def dead_service(running: Running) -> str | None:
    """What has died, with its log, if the embedded broker or database or a child has exited."""
    for service in running.stack.services:
        if (code := service.process.poll()) is not None:
            return f"the embedded {service.name} exited with {code}; its log: {service.log_path}"
    for name, proc in running.children:
        if (code := proc.poll()) is not None:
            return f"{name} exited with {code} while starting; its log: {_log_of(running, name)}"
    return None


def _log_of(running: Running, name: str) -> Path:
    return running.log_paths.get(name, running.stack.settings.data_dir.resolve() / "logs")


def while_services_live(running: Running, work: Callable[[], T], poll_s: float = 0.2) -> T:
    """work()'s result, done in a thread while the children are watched: ServiceStartError as
    soon as one exits (a port in use, a crash) instead of waiting out work's own timeout."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def _run() -> None:
        try:
            outcome.append(work())
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)

    # A daemon: if a service died, the abandoned poll must not keep dev from exiting.
    thread = threading.Thread(target=_run, name="dev-start-wait", daemon=True)
    thread.start()
    while True:
        thread.join(poll_s)
        if (dead := dead_service(running)) is not None:
            raise ServiceStartError(f"{dead}; dev stops (nothing was left running)")
        if not thread.is_alive():
            if failure:
                raise failure[0]
            return outcome[0]


def _port_taken(host: str, port: int) -> bool:
    """Whether something else listens on host:port (a port in TIME_WAIT is free to bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def check_ports_free(settings: Settings) -> None:
    """ServiceStartError naming the setting if another program holds a port dev's services need.

    Caught here, before anything starts: a foreign server on the edge's port would otherwise
    answer dev's "is the edge up?" check, and dev would announce a platform that takes no calls.
    """
    wanted = [
        ("VOICE_EDGE__PORT", settings.edge.host, settings.edge.port),
        ("VOICE_EDGE__BRIDGE_PORT", settings.edge.bridge_host, settings.edge.bridge_port),
        ("VOICE_API__PORT", settings.api.host, settings.api.port),
    ]
    taken = [f"{host}:{port} ({name})" for name, host, port in wanted if _port_taken(host, port)]
    if taken:
        raise ServiceStartError(
            f"another program already listens on {', '.join(taken)}: stop it, or set "
            "the variable to a free port (in the environment or .env)"
        )


def _spawn(
    running: Running,
    label: str,
    argv: list[str],
    log_path: Path,
    env: dict[str, str],
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    proc = spawn_bound_child(argv, log_path=log_path, env=env, nice=nice)
    running.children.append((label, proc))
    running.log_paths[label] = log_path
    return proc


def dev_secrets(data_dir: Path) -> dict[str, str]:
    """The dev API key and Twilio token, made once and kept, so restarts keep working clients."""
    path = data_dir / "dev-secrets.json"
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded
    data_dir.mkdir(parents=True, exist_ok=True)
    made = {"api_key": "va_dev_" + secrets.token_urlsafe(24), "twilio_auth_token": secrets.token_hex(16)}
    path.write_text(json.dumps(made))
    path.chmod(0o600)
    return made


def run_dev(
    settings: Settings,
    console: Console,
    *,
    only_infra: bool = False,
    session_workers: int = 1,
    background_nice: int = DEFAULT_BACKGROUND_NICE,
) -> bool:
    """Start everything, print where it is, and wait for Ctrl-C; always stop what was started.

    False when it stopped because the embedded broker or database died, not because it was asked.

    ``session_workers`` streams workers share the calls (one consumer group: each owns some of
    the call partitions, and takes over another's calls if it dies), one process per core.
    """
    data_dir = settings.data_dir.resolve()
    with hold_data_dir(data_dir):
        return _run(settings, data_dir, console, only_infra, session_workers, background_nice)


def _run(
    settings: Settings,
    data_dir: Path,
    console: Console,
    only_infra: bool,
    session_workers: int,
    background_nice: int,
) -> bool:
    """run_dev, once the data directory is this process's."""
    with console.status("starting broker and database..."):
        stack = start_stack(settings)
    running = Running(stack)
    wrote_addresses = False
    try:
        running.notes += prepare_log(stack.settings, console)
        if only_infra:
            _show(running, None, console)
            healthy = _wait(running, console)
        else:
            addresses = _start_services(running, data_dir, console, session_workers, background_nice)
            wrote_addresses = True
            _show(running, addresses, console)
            healthy = _wait(running, console)
    finally:
        if wrote_addresses:  # tools read dev.json as "the platform takes calls": not once stopped
            (data_dir / DEV_FILE).unlink(missing_ok=True)
        running.stop(console)
    return healthy


def prepare_log(settings: Settings, console: Console) -> list[str]:
    """Migrate the database, bring the log back from the archive, create the missing topics."""
    with console.status("migrating the database..."):
        upgrade_database(settings.database)
    # The restore goes first: it creates the archived topics with the partition counts they had
    # (a key's partition follows from the count), and refuses a topic made with another count.
    notes = reconcile_fresh_broker(settings, console)
    with console.status("creating topics..."):
        asyncio.run(ensure_topics(settings.kafka))
    return notes


def _start_services(
    running: Running,
    data_dir: Path,
    console: Console,
    session_workers: int = 1,
    background_nice: int = DEFAULT_BACKGROUND_NICE,
) -> DevAddresses:
    settings = running.stack.settings
    check_ports_free(settings)
    keys = dev_secrets(data_dir)
    env = _base_env(settings, keys)
    running.edge_drain_s = dev_drain_deadline(settings)
    env["VOICE_EDGE__DRAIN_DEADLINE_S"] = str(running.edge_drain_s)
    standin_control: str | None = None
    if not settings.gemini.api_key.get_secret_value() and not settings.gemini.base_url:
        standin_control = _start_standin(running, env, data_dir)
    twilio_standin: str | None = None
    if _offline_twilio(settings):
        twilio_standin = _start_twilio_standin(running, env, data_dir)
    missing = {argv[1] for _, argv in SERVICES if importlib.util.find_spec(argv[1]) is None}
    running.notes += [
        f"{name}: not available in this build ({a[1]})" for name, a in SERVICES if a[1] in missing
    ]
    for child in planned_children(session_workers, background_nice):
        if child.argv[1] in missing:
            continue
        log_path = data_dir / "logs" / child.log_name
        argv = [sys.executable, *child.argv]
        _spawn(running, child.label, argv, log_path, env | child.env, child.nice)
    api_url = f"http://{env['VOICE_API__HOST']}:{env['VOICE_API__PORT']}"
    with console.status("waiting for the API and seeding the demo agent..."):
        logs_dir = data_dir / "logs"
        agent_id = while_services_live(
            running, lambda: seed_demo_agent(api_url, keys["api_key"], timeout_s=90, logs_dir=logs_dir)
        )
    edge_host = "127.0.0.1" if settings.edge.host in ("0.0.0.0", "::") else settings.edge.host
    listeners = [(edge_host, settings.edge.port), *([_address(twilio_standin)] if twilio_standin else [])]
    with console.status("waiting for the edge..."):
        # dev.json tells tools the platform takes calls, and the edge may come up after the API.
        for listener in listeners:
            if not while_services_live(running, functools.partial(_listening, listener, 60)):
                running.notes.append(f"nothing listens on {listener[0]}:{listener[1]} yet; see the logs")
    addresses = DevAddresses(
        bootstrap=settings.kafka.bootstrap or "",
        database_url=settings.database.url or "",
        api_url=api_url,
        api_key=keys["api_key"],
        edge_url=env["VOICE_TWILIO__PUBLIC_BASE_URL"],
        twilio_auth_token=keys["twilio_auth_token"],
        standin_control_url=standin_control,
        demo_agent_id=agent_id,
        demo_number=DEMO_NUMBER,
        twilio_standin_url=twilio_standin,
    )
    addresses.write(data_dir)
    return addresses


def dev_drain_deadline(settings: Settings) -> float:
    """The edge's drain deadline in dev: the one configured, else the short dev one."""
    edge = settings.edge
    return edge.drain_deadline_s if "drain_deadline_s" in edge.model_fields_set else DEV_DRAIN_DEADLINE_S


def _base_env(settings: Settings, keys: dict[str, str]) -> dict[str, str]:
    edge_port = settings.edge.port
    env = dict(os.environ)
    # The embedded broker forgets on restart and the archive is how the log comes back, so
    # roll archive files often (a file closes, fsyncs and commits its offsets when it rolls).
    env.setdefault("VOICE_ARCHIVE__ROLL_SECONDS", "5")
    env.update(
        {
            "VOICE_ENV": settings.env,
            "VOICE_DATA_DIR": str(settings.data_dir.resolve()),
            "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
            "VOICE_DATABASE__URL": settings.database.url or "",
            "VOICE_API__HOST": settings.api.host,
            "VOICE_API__PORT": str(settings.api.port),
            "VOICE_API__BOOTSTRAP_API_KEY": keys["api_key"],
            "VOICE_TWILIO__AUTH_TOKEN": settings.twilio.auth_token.get_secret_value()
            or keys["twilio_auth_token"],
            # The setting's default names the default edge port: one that was not set follows
            # the edge's port, or simulated calls (and dev.json) would dial the wrong one.
            "VOICE_TWILIO__PUBLIC_BASE_URL": settings.twilio.public_base_url
            if "public_base_url" in settings.twilio.model_fields_set
            else f"http://127.0.0.1:{edge_port}",
        }
    )
    return env


def _start_standin(running: Running, env: dict[str, str], data_dir: Path) -> str:
    port, control = free_port(), free_port()
    cert_dir = data_dir / "standin-certs"
    argv = [sys.executable, "-m", "streams.standin", "--port", str(port), "--control-port", str(control)]
    argv += ["--cert-dir", str(cert_dir)]
    _spawn(running, "gemini stand-in (offline)", argv, data_dir / "logs" / "standin.log", env)
    # Workers read the stand-in's CA file when they start (the summary worker at once), and the
    # stand-in writes it before it listens: wait for that, or they would start without it.
    if not while_services_live(running, functools.partial(_listening, ("127.0.0.1", port), 60)):
        running.notes.append("the offline Gemini stand-in did not start; see logs/standin.log")
    env["VOICE_GEMINI__BASE_URL"] = f"https://127.0.0.1:{port}"
    env["VOICE_GEMINI__CA_FILE"] = str(cert_dir / "standin-ca.pem")
    env["VOICE_GEMINI__API_KEY"] = "offline-stand-in"
    running.notes.append(
        "GEMINI key not set: the offline Gemini stand-in answers (scripted, labelled replies)"
    )
    return f"http://127.0.0.1:{control}"


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _listening(address: tuple[str, int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(address, timeout=0.5):
                return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def _offline_twilio(settings: Settings) -> bool:
    """No Twilio account (the test SID or no token) and no other API to redirect to."""
    twilio = settings.twilio
    unset = twilio.account_sid == TwilioSettings().account_sid or not twilio.auth_token.get_secret_value()
    return unset and not twilio.api_base_url


def _start_twilio_standin(running: Running, env: dict[str, str], data_dir: Path) -> str:
    port = free_port()
    argv = [sys.executable, "-m", "streams.telephony.standin", "--port", str(port)]
    _spawn(running, "twilio stand-in (offline)", argv, data_dir / "logs" / "twilio-standin.log", env)
    env["VOICE_TWILIO__API_BASE_URL"] = f"http://127.0.0.1:{port}"
    running.notes.append(
        "Twilio account not set: outbound calls ring the offline Twilio stand-in "
        "(try `voiceagent call simulate --agent demo --outbound`)"
    )
    return env["VOICE_TWILIO__API_BASE_URL"]


def _show(running: Running, addresses: DevAddresses | None, console: Console) -> None:
    table = Table(title="voiceagent dev")
    for column in ("component", "where", "pid"):
        # Folded, never cut with "…": an address is copied from here (a pipe gives 80 columns).
        table.add_column(column, overflow="fold")
    for service in running.stack.services:
        table.add_row(f"embedded {service.name}", service.address, str(service.pid))
    for name, proc in running.children:
        table.add_row(name, "log: " + str(running.stack.settings.data_dir / "logs"), str(proc.pid))
    console.print(table)
    for note in running.notes:
        console.print(f"[yellow]• {note}[/]")
    if addresses is not None:
        # soft_wrap: one line each whatever the width, so a key or a command copies whole.
        console.print(f"API docs:  {addresses.api_url}/docs", soft_wrap=True)
        console.print(f"API key:   {addresses.api_key}", soft_wrap=True)
        console.print(
            f"Edge:      {addresses.edge_url}   (Twilio webhooks: /twilio/voice, /twilio/status)",
            soft_wrap=True,
        )
        console.print(
            'Try a call: .venv/bin/voiceagent call simulate --agent demo --say "Hello, are you open today?"',
            soft_wrap=True,
        )
    console.print("Press Ctrl-C to stop everything.")


def _wait(running: Running, console: Console) -> bool:
    """Until Ctrl-C or SIGTERM (True), or until the broker or the database dies (False).

    A service that exits is reported once and the rest keep running; without the embedded
    broker or database nothing can work, so dev says so and stops.
    """
    stop = False
    reported: set[int] = set()

    def _on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    # Also SIGINT, explicitly: a shell starting `make dev &` without job control hands it
    # SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, _on_signal)
    try:
        while not stop:
            if not check_exits(running, reported, console):
                return False
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return True


def check_exits(running: Running, reported: set[int], console: Console) -> bool:
    """Report each child that has exited, once; False when an embedded service (the broker or
    the database) has: every service depends on it, and waiting on would hide that."""
    logs = running.stack.settings.data_dir / "logs"
    for service in running.stack.services:
        code = service.process.poll()
        if code is not None:
            console.print(
                f"[red]the embedded {service.name} exited with {code}: nothing works without it, so "
                f"dev stops. Its log: {service.log_path}. Run `make dev` again to start afresh "
                "(the event log comes back from the archive).[/]"
            )
            return False
    for name, proc in running.children:
        if proc.poll() is not None and proc.pid not in reported:
            reported.add(proc.pid)
            log = running.log_paths.get(name, logs)
            console.print(f"[red]{name} exited with {proc.returncode}; the rest keep running. See {log}[/]")
    return True
