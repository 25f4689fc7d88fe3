"""What `voiceagent dev` starts: every service once, the session worker as often as asked."""

from __future__ import annotations

import pytest
from rich.console import Console

from infra.settings import Settings
from infra.stack import Stack
from tests.support.dev_addresses import dev_addresses
from voiceagent.dev import BACKGROUND_SERVICES, SERVICES, STREAMS_WORKER, Running, _show, planned_children


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


def test_the_archiver_stops_last_so_the_archive_holds_what_the_others_write_while_stopping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopped: list[str] = []
    monkeypatch.setattr("voiceagent.dev.stop_child", lambda proc: stopped.append(proc))
    monkeypatch.setattr("voiceagent.dev.signal.signal", lambda *_: None)
    stack = Stack(settings=Settings())
    monkeypatch.setattr(stack, "stop", lambda: stopped.append("stack"))
    running = Running(stack)
    running.children = [(c.label, c.label) for c in planned_children()]  # type: ignore[misc]
    running.stop(Console(record=True))
    assert stopped[-2:] == ["archiver", "stack"]
    assert stopped[:2] == ["api", "projections"]  # the rest in reverse start order
