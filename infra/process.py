"""Child processes that die with their parent: the guarantee behind 'no orphan services'."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import pwd
import random
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent(expected_parent: int) -> None:
    # Runs in the child between fork and exec. PDEATHSIG fires when the *thread* that forked
    # us exits, so children must be spawned from the main thread (enforced below).
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected_parent:  # the parent already died before prctl took effect
        os._exit(1)


def _prepare_child(expected_parent: int, nice: int) -> None:
    # Between fork and exec: bound to the parent's life, then at the priority asked for.
    _die_with_parent(expected_parent)
    if nice:
        os.nice(nice)


class RunAs(TypedDict, total=False):
    """subprocess keyword arguments that drop a child to a user."""

    user: str
    group: int
    extra_groups: list[int]


def run_as(user: str | None) -> RunAs:
    """Run a child as ``user``, its primary group and no other (nothing, for None).

    ``subprocess``'s ``user=`` alone keeps our groups: a child left in root's group is refused
    by a directory whose group bits (not its other bits) then apply to it.
    """
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def spawn_bound_child(
    argv: Sequence[str],
    *,
    log_path: Path,
    user: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    """Start argv in its own process group, killed by the kernel if this process dies.

    ``nice`` lowers its CPU priority (0 leaves it as this process's).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("bound children must be spawned from the main thread (PDEATHSIG)")
    if nice < 0:  # checked here: inside the child it would fail as an opaque preexec_fn error
        raise ValueError(f"nice must be 0 or more, not {nice}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    parent = os.getpid()
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            **run_as(user),
            process_group=0,  # Ctrl-C in a terminal reaches us, and we stop children in order
            preexec_fn=lambda: _prepare_child(parent, nice),
        )


def stop_child(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Ask a child to stop, then kill it if it does not within the timeout."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on host, chosen outside the kernel's ephemeral range.

    ``bind(0)`` picks from the ephemeral range, the same range every outgoing connection takes
    its local port from: between this call and the service binding the port, a client socket
    (a Kafka connection, say) can take it, and the service fails with "address already in use".
    Ports below the range are only ever taken by an explicit bind.
    """
    low, _ = _ephemeral_range()
    if low - _FIXED_PORTS_FLOOR >= 1000:
        for _ in range(100):
            port = _FIXED_PORTS_FLOOR + _random.randrange(low - _FIXED_PORTS_FLOOR)
            if port not in _handed_out and _bindable(host, port):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


_FIXED_PORTS_FLOOR = 20000  # well clear of the usual fixed services (PostgreSQL, Kafka, HTTP)
_random = random.Random()  # seeded from the OS: two processes pick independently
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets: how every service's main loop learns to stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory for ``asyncio.Runner`` (None: the stock loop).

    uvloop comes with uvicorn[standard]; its transports and TLS are compiled, which matters to
    services that handle a message per 20 ms frame per call (bench/RESULTS.md).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return None
    return uvloop.new_event_loop
