"""The `voiceagent` command line: run the platform locally, place simulated calls, operate it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import InterfaceError, OperationalError

from infra.db import is_database_outage
from infra.embedded import EmbeddedStartError
from infra.eventlog.archive_cli import archive_app
from infra.eventlog.cli import events_app
from infra.eventlog.restore import RestoreError
from infra.eventlog.schema_registry import SchemaRegistryError
from infra.migrate import upgrade_database
from infra.settings import Settings
from infra.topics import ensure_topics
from voiceagent.calls import call_app
from voiceagent.dev import DEFAULT_BACKGROUND_NICE, ServiceStartError, run_dev
from voiceagent.devfile import DevAddresses
from voiceagent.devlock import DevAlreadyRunningError
from voiceagent.doctor import run_doctor
from voiceagent.replay_cli import replay_command
from voiceagent.seed import SeedError

app = typer.Typer(help="Run and operate the voice-agent platform.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(archive_app, name="archive")
app.add_typer(call_app, name="call")
app.command("replay")(replay_command)
console = Console()


@app.callback()
def _find_the_dev_stack(ctx: typer.Context) -> None:
    """Run and operate the voice-agent platform."""
    # `events`, `archive` and `replay` work on the broker (and database) the environment names.
    # With none set, a running `voiceagent dev` is what a newcomer means: its ports change on
    # every start, and dev.json says where they are (as `call simulate` finds them).
    if ctx.invoked_subcommand not in ("events", "archive", "replay"):
        return
    settings = Settings()
    # No dev stack (or a dev.json from another version): the command says what to set.
    with contextlib.suppress(FileNotFoundError, TypeError, ValueError):
        dev = DevAddresses.read(settings.data_dir.resolve())
        if settings.uses_embedded_broker:
            os.environ["VOICE_KAFKA__BOOTSTRAP"] = dev.bootstrap
        if settings.uses_embedded_database and dev.database_url:
            os.environ["VOICE_DATABASE__URL"] = dev.database_url


@app.command()
def dev(
    only_infra: bool = typer.Option(False, help="start broker and database only, no services"),
    session_workers: int = typer.Option(
        1, min=1, max=16, help="streams workers sharing the calls (one per spare core)"
    ),
    background_nice: int = typer.Option(
        DEFAULT_BACKGROUND_NICE,
        min=0,
        max=19,
        help="CPU niceness of the services off the call path (read models, dialer, webhooks, "
        "summaries, archive); 0 runs them at the same priority as the call path",
    ),
) -> None:
    """Start the whole platform on this machine (embedded broker and PostgreSQL by default)."""
    logging.basicConfig(level=logging.WARNING)
    stopped_as_asked = run_dev(
        Settings(),
        console,
        only_infra=only_infra,
        session_workers=session_workers,
        background_nice=background_nice,
    )
    if not stopped_as_asked:
        raise typer.Exit(1)


@app.command()
def doctor() -> None:
    """Check configuration and connectivity, and say what is wrong in plain words."""
    raise typer.Exit(run_doctor(Settings(), console))


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
    """Console-script entry point: an unreachable broker or database is a message, not a traceback."""
    try:
        app()  # usage errors and --help end here with typer's own messages and exit codes
    except KafkaError as err:
        console.print(
            f"[red]the broker could not be reached or refused the request ({type(err).__name__}: {err})[/]\n"
            "Is it running, and does VOICE_KAFKA__BOOTSTRAP point at it? `voiceagent doctor` checks."
        )
        raise SystemExit(3) from None
    except (OperationalError, InterfaceError) as err:
        if not is_database_outage(err):  # reachable, and it refused this statement
            console.print(f"[red]the database refused the request: {err.orig}[/]")
            raise SystemExit(1) from None
        console.print(
            f"[red]the database could not be reached: {err.orig}[/]\n"
            "Is it running, and does VOICE_DATABASE__URL point at it? `voiceagent doctor` checks."
        )
        raise SystemExit(3) from None
    except ValidationError as err:  # the configuration doctor is meant to explain
        console.print("[red]the configuration is not valid:[/]")
        for problem in err.errors():
            where = "__".join(str(part) for part in problem["loc"]).upper()
            console.print(f"  VOICE_{where}: {problem['msg']}" if where else f"  {problem['msg']}")
        console.print("Fix the environment (or .env) and run again.")
        raise SystemExit(2) from None
    except DevAlreadyRunningError as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise SystemExit(2) from None
    except EmbeddedStartError as err:  # its message carries the service's log tail
        console.print(f"[red]the embedded broker or database did not start: {escape(str(err))}[/]")
        raise SystemExit(3) from None
    except (ServiceStartError, SeedError) as err:  # dev: a service died or the API never came up
        console.print(f"[red]the platform did not start: {escape(str(err))}[/]")
        raise SystemExit(3) from None
    except SchemaRegistryError as err:  # confluent framing without (or with an absent) registry
        console.print(f"[red]{escape(str(err))}[/]")
        raise SystemExit(2) from None
    except RestoreError as err:
        console.print(
            f"[red]the event archive cannot be restored: {escape(str(err))}[/]\n"
            "`voiceagent dev` restores the archive only when it is whole and consistent: fix it as "
            "said above, or move the whole archive aside to start with an empty log, and run "
            "again; `voiceagent archive restore --help` explains restoring by hand."
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
