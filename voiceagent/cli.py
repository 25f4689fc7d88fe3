"""The `voiceagent` command line: run the platform locally and look after it."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time

import typer
from rich.console import Console
from rich.table import Table

from infra.eventlog.cli import archive_app, events_app
from infra.migrate import upgrade_database
from infra.process import spawn_bound_child, stop_child
from infra.settings import Settings
from infra.stack import Stack, start_stack
from infra.topics import ensure_topics

app = typer.Typer(help="Run and operate the voice-agent platform.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(archive_app, name="archive")
console = Console()

# Services are started by module name, so this composition root imports none of them.
SERVICES: tuple[tuple[str, str], ...] = (
    ("edge", "edge"),
    ("streams worker", "streams"),
    ("writers", "streams.writers"),
    ("projections", "projections"),
    ("api", "api"),
)


def _service_env(stack: Stack) -> dict[str, str]:
    settings = stack.settings
    env = dict(os.environ)
    env["VOICE_KAFKA__BOOTSTRAP"] = settings.kafka.bootstrap or ""
    env["VOICE_DATABASE__URL"] = settings.database.url or ""
    env["VOICE_DATA_DIR"] = str(settings.data_dir.resolve())
    return env


def prepare(stack: Stack) -> list[str]:
    """Create missing topics and migrate the database; return the topics created."""
    created = asyncio.run(ensure_topics(stack.settings.kafka))
    upgrade_database(stack.settings.database)
    return created


@app.command()
def dev(
    only_infra: bool = typer.Option(False, help="start broker and database only, no services"),
) -> None:
    """Start the whole platform on this machine (embedded broker and PostgreSQL by default)."""
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    with console.status("starting broker and database..."):
        stack = start_stack(settings)
        created = prepare(stack)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        if not only_infra:
            for name, module in SERVICES:
                if importlib.util.find_spec(f"{module}.__main__") is None:
                    console.print(f"[yellow]{name}: not built yet ({module}/__main__.py missing)[/]")
                    continue
                log = stack.settings.data_dir.resolve() / "logs" / f"{module}.log"
                proc = spawn_bound_child(
                    [sys.executable, "-m", module], log_path=log, env=_service_env(stack)
                )
                children.append((name, proc))
        _show_status(stack, children, created)
        _wait_until_interrupted(children)
    finally:
        console.print("stopping...")
        for _name, proc in reversed(children):
            stop_child(proc)
        stack.stop()
        console.print("[green]stopped cleanly[/]")


def _show_status(
    stack: Stack, children: list[tuple[str, subprocess.Popen[bytes]]], created: list[str]
) -> None:
    table = Table(title="voiceagent dev")
    table.add_column("component")
    table.add_column("where")
    table.add_column("pid")
    for service in stack.services:
        table.add_row(f"embedded {service.name}", service.address, str(service.pid))
    if not stack.services:
        table.add_row("broker", stack.settings.kafka.bootstrap or "?", "external")
        table.add_row("database", stack.settings.database.url or "?", "external")
    for name, proc in children:
        table.add_row(name, "see logs in " + str(stack.settings.data_dir / "logs"), str(proc.pid))
    console.print(table)
    if created:
        console.print(f"created {len(created)} topics")
    console.print("Press Ctrl-C to stop everything.")


def _wait_until_interrupted(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    stop = False

    def _on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        while not stop:
            for name, proc in children:
                if proc.poll() is not None:
                    console.print(f"[red]{name} exited with {proc.returncode}; see its log[/]")
                    return
            time.sleep(0.5)
    except KeyboardInterrupt:
        return


@app.command()
def migrate() -> None:
    """Apply the database migrations to the configured database."""
    settings = Settings()
    if settings.uses_embedded_database:
        console.print("[red]VOICE_DATABASE__URL is not set; `voiceagent dev` migrates the embedded one[/]")
        raise typer.Exit(2)
    upgrade_database(settings.database)
    console.print("[green]database is at head[/]")


@app.command()
def topics() -> None:
    """Create the catalog's topics on the configured broker (idempotent)."""
    settings = Settings()
    if settings.uses_embedded_broker:
        console.print("[red]VOICE_KAFKA__BOOTSTRAP is not set; `voiceagent dev` creates them itself[/]")
        raise typer.Exit(2)
    created = asyncio.run(ensure_topics(settings.kafka))
    console.print(f"created: {', '.join(created) or 'nothing (all present)'}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()


__all__ = ["app", "main"]
