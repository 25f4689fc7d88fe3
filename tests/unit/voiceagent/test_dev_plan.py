"""What `voiceagent dev` starts: every service once, the session worker as often as asked."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from infra.embedded import EmbeddedService
from infra.process import free_port
from infra.settings import ApiSettings, EdgeSettings, Settings
from infra.stack import Stack
from tests.support.dev_addresses import dev_addresses
from voiceagent.dev import (
    BACKGROUND_SERVICES,
    DEV_DRAIN_DEADLINE_S,
    SERVICES,
    STREAMS_WORKER,
    Running,
    ServiceStartError,
    _show,
    check_exits,
    check_ports_free,
    dead_service,
    dev_drain_deadline,
    planned_children,
    while_services_live,
)
from voiceagent.seed import SeedError, seed_demo_agent


def test_one_of_each_service_by_default() -> None:
    children = planned_children()
    assert [c.label for c in children] == [name for name, _ in SERVICES]
    assert all(c.env == {} for c in children)
    assert len({c.log_name for c in children}) == len(children)


def test_several_session_workers_get_their_own_ids_and_logs() -> None:
    children = planned_children(session_workers=3)
    workers = [c for c in children if c.argv[1] == STREAMS_WORKER]
    assert [c.env["VOICE_STREAMS__WORKER_ID"] for c in workers] == ["worker-1", "worker-2", "worker-3"]
    assert [c.log_name for c in workers] == ["streams-1.log", "streams-2.log", "streams-3.log"]
    others = [c for c in children if c.argv[1] != STREAMS_WORKER]
    assert len(others) == len(SERVICES) - 1
    assert all(c.env == {} for c in others)


def test_services_off_the_call_path_run_at_a_lower_priority() -> None:
    children = {c.label: c for c in planned_children(session_workers=2, background_nice=7)}
    background = {label for label, child in children.items() if child.nice == 7}
    assert background == BACKGROUND_SERVICES
    call_path = {label for label, child in children.items() if child.nice == 0}
    assert {"edge", "streams worker 1", "streams worker 2", "api"} <= call_path
    assert all(c.nice == 0 for c in planned_children(background_nice=0))


def test_the_status_screen_keeps_keys_and_addresses_whole_in_a_narrow_pipe() -> None:
    key = "vk_dev_" + "k" * 60  # longer than a line of a piped 80-column console
    database = "postgresql+psycopg://voice:secret@127.0.0.1:54321/voiceagent_with_a_long_name"
    addresses = dev_addresses(bootstrap="127.0.0.1:9092", database_url=database, api_key=key)
    running = Running(Stack(settings=Settings()))
    console = Console(record=True, width=80, force_terminal=False)
    _show(running, addresses, console)
    lines = console.export_text().splitlines()
    assert f"API key:   {key}" in lines
    assert not any("…" in line for line in lines)


def test_dev_stops_the_edge_first_then_who_records_its_calls_and_the_archiver_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not reverse start order any more: that stopped the calls worker and the dialer before the
    # edge, so the calls the edge ended at Ctrl-C were never recorded and stayed "in progress"
    # for good. Now the edge first (it ends its calls), then the calls workers and the dialer
    # (they record those ends), then the rest in reverse start order, and the archiver last so
    # that all of it reaches the archive the next start restores (ADR 20).
    stopped: list[str] = []
    timeouts: dict[str, float] = {}

    def stop_child(proc: str, *, timeout: float = 10.0) -> None:
        stopped.append(proc)
        timeouts[proc] = timeout

    monkeypatch.setattr("voiceagent.dev.stop_child", stop_child)
    monkeypatch.setattr("voiceagent.dev.signal.signal", lambda *_: None)
    monkeypatch.setattr("voiceagent.dev.time.sleep", lambda _s: None)
    stack = Stack(settings=Settings())
    monkeypatch.setattr(stack, "stop", lambda: stopped.append("stack"))
    running = Running(stack, edge_drain_s=20.0)
    labels = ["gemini stand-in (offline)", *(c.label for c in planned_children(session_workers=2))]
    running.children = [(label, _Alive(label)) for label in labels]  # type: ignore[misc]
    running.stop(Console(record=True))
    assert stopped[:4] == ["edge", "streams worker 1", "streams worker 2", "dialer"]
    assert stopped[4:6] == ["api", "projections"]  # the rest in reverse start order
    assert stopped[-3:] == ["gemini stand-in (offline)", "archiver", "stack"]
    assert timeouts["edge"] > 20.0  # killed mid-drain, its calls would not end
    assert timeouts["dialer"] == 10.0


class _Alive(str):
    """Stands for a running child in the stop order test."""

    def poll(self) -> None:
        return None


def test_the_dev_edge_drains_briefly_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dev_drain_deadline(Settings()) == DEV_DRAIN_DEADLINE_S
    monkeypatch.setenv("VOICE_EDGE__DRAIN_DEADLINE_S", "30")
    assert dev_drain_deadline(Settings()) == 30.0


def _process(code: int | None) -> subprocess.Popen[bytes]:
    """A real child: still running (None), killed by a signal (-N), or exited with ``code``."""
    script = "import time; time.sleep(60)" if code is None or code < 0 else f"raise SystemExit({code})"
    proc = subprocess.Popen([sys.executable, "-c", script])
    if code is not None and code < 0:
        proc.send_signal(-code)
    if code is not None:
        proc.wait()
    return proc


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    running = Running(Stack(settings=Settings(data_dir=tmp_path)))
    yield running
    for proc in [s.process for s in running.stack.services] + [p for _, p in running.children]:
        proc.kill()
        proc.wait()


def test_dev_stops_when_the_embedded_broker_dies_and_says_why(running: Running, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "tansu.log"
    running.stack.services.append(EmbeddedService("tansu", "127.0.0.1:1", _process(-9), log))
    running.children.append(("edge", _process(None)))
    console = Console(record=True, width=400)
    assert not check_exits(running, set(), console)
    said = console.export_text()
    assert "the embedded tansu exited with -9" in said
    assert str(log) in said


def test_a_service_that_exits_is_reported_once_and_the_rest_keep_running(running: Running) -> None:
    running.stack.services.append(EmbeddedService("tansu", "127.0.0.1:1", _process(None), Path("t.log")))
    running.children += [("edge", _process(None)), ("webhooks", _process(3))]
    reported: set[int] = set()
    console = Console(record=True, width=400)
    assert check_exits(running, reported, console)
    assert check_exits(running, reported, console)
    assert console.export_text().count("webhooks exited with 3; the rest keep running") == 1
    assert "edge" not in console.export_text()


def test_dev_stops_at_once_naming_a_service_that_died_while_it_waits_for_the_api(
    running: Running, tmp_path: Path
) -> None:
    # Before, dev polled the API for 90 s whatever had died, then printed a traceback.
    log = tmp_path / "logs" / "edge.log"
    running.children += [("api", _process(None)), ("edge", _process(1))]
    running.log_paths["edge"] = log
    released = threading.Event()
    started = time.monotonic()
    try:
        with pytest.raises(ServiceStartError) as stopped:
            while_services_live(running, lambda: released.wait(30))
    finally:
        released.set()
    assert time.monotonic() - started < 5
    assert f"edge exited with 1 while starting; its log: {log}" in str(stopped.value)


def test_waiting_while_the_services_live_returns_the_result_or_raises_the_error(running: Running) -> None:
    running.children.append(("api", _process(None)))
    assert while_services_live(running, lambda: "agent-1") == "agent-1"

    def refused() -> str:
        raise SeedError("creating the demo agent failed: HTTP 500")

    with pytest.raises(SeedError, match="HTTP 500"):
        while_services_live(running, refused)


def test_a_dead_service_without_a_known_log_points_at_this_data_dirs_logs(
    running: Running, tmp_path: Path
) -> None:
    running.children.append(("writers", _process(2)))
    assert dead_service(running) == f"writers exited with 2 while starting; its log: {tmp_path / 'logs'}"


def test_dev_refuses_to_start_when_another_program_holds_the_edge_port() -> None:
    # Before, a foreign server on the edge port answered dev's "is the edge up?" check, the edge
    # itself died, and dev announced a platform that took no calls.
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        edge = EdgeSettings(port=port, bridge_port=free_port())
        settings = Settings(edge=edge, api=ApiSettings(port=free_port()))
        with pytest.raises(ServiceStartError, match=rf"127.0.0.1:{port} \(VOICE_EDGE__PORT\)"):
            check_ports_free(settings)
    check_ports_free(settings)  # once it is gone


def test_the_seed_error_names_the_logs_of_the_data_dir_in_use(tmp_path: Path) -> None:
    def no_api(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    logs = tmp_path / "data" / "logs"
    with pytest.raises(SeedError) as failed:
        seed_demo_agent(
            "http://api", "k", timeout_s=0.1, transport=httpx.MockTransport(no_api), logs_dir=logs
        )
    assert f"see {logs / 'api.log'}" in str(failed.value)
    assert ".voiceagent/logs" not in str(failed.value)
