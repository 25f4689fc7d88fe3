"""The `voiceagent replay` command: its options, progress bars and report (the steps: voiceagent.replay)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from infra.db import schema_name_problem
from infra.eventlog.archive_cli import restore_with_progress
from infra.eventlog.cli import when_option
from infra.eventlog.restore import RestoreError
from infra.process import stop_on_signals
from infra.settings import Settings
from projections.rebuild import ReplayError, resolve_names
from projections.replay_fold import ReplayRequest
from voiceagent.replay import ReplayOutcome, replay

err = Console(stderr=True)
_LOG_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # Kafka timestamps count from here
# The fold is CPU-bound Python, so a process per core is the ceiling; two leave PostgreSQL and the
# broker room on a small machine, and more writers mostly queue on the database beyond that.
DEFAULT_JOBS = min(2, os.cpu_count() or 1)


def replay_command(
    projections: list[str] = typer.Argument(
        ..., help="calls, agents, knowledge, campaigns, summaries, or all"
    ),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="replay the whole log (default)"),
    since: str | None = typer.Option(None, "--since", help="ISO time: start there (partial models!)"),
    into_schema: str | None = typer.Option(None, "--into-schema", help="default rebuild_<timestamp>"),
    swap: bool = typer.Option(False, "--swap", help="swap the rebuilt tables into the live schema"),
    from_archive: str | None = typer.Option(None, "--from-archive", help="restore this archive first"),
    force: bool = typer.Option(False, "--force", help="restore into topics that already hold records"),
    live_schema: str | None = typer.Option(None, "--live-schema", help="default: the search path's"),
    check: bool = typer.Option(True, "--verify/--no-verify", help="check the tables against the log"),
    allow_undecodable: bool = typer.Option(
        False, "--allow-undecodable", help="swap even though some records do not decode (they are left out)"
    ),
    batch: int = typer.Option(2000, "--batch", min=1, help="records per transaction at most"),
    jobs: int = typer.Option(
        DEFAULT_JOBS, "--jobs", min=1, help="processes folding partitions side by side; 1 folds in this one"
    ),
) -> None:
    """Rebuild read models from the log into a fresh schema while the live ones keep serving."""
    if from_beginning and since is not None:
        raise typer.BadParameter("choose --from-beginning or --since, not both", param_hint="--since")
    try:
        names = resolve_names(projections)
    except ReplayError as exc:
        raise typer.BadParameter(str(exc), param_hint="PROJECTION") from None
    # Everything a user can get wrong is refused here, before a schema is created or migrated.
    for name, option in ((into_schema, "--into-schema"), (live_schema, "--live-schema")):
        problem = None if name is None else schema_name_problem(name)
        if problem is not None:
            raise typer.BadParameter(problem, param_hint=option)
    start = when_option(since, "--since")
    if start is not None and start < _LOG_EPOCH:
        raise typer.BadParameter("the log holds nothing before 1970-01-01", param_hint="--since")
    settings = _settings()
    schema = into_schema or f"rebuild_{datetime.now(UTC):%Y%m%d%H%M%S}"
    request = ReplayRequest(schema=schema, projections=names, since=start, max_records=batch, jobs=jobs)
    try:
        if from_archive is not None:
            _restore(settings, from_archive, force)
        outcome = asyncio.run(_run(settings, request, swap, live_schema, check, allow_undecodable))
    except (ReplayError, ValueError) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    _report(outcome)


def _progress() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"))
    return Progress(*columns, TimeRemainingColumn(), console=err)


def _settings() -> Settings:
    settings = Settings()
    if settings.uses_embedded_broker or settings.uses_embedded_database:
        err.print(
            "[red]no broker or database: start `voiceagent dev` (found by itself), or set "
            "VOICE_KAFKA__BOOTSTRAP and VOICE_DATABASE__URL[/]"
        )
        raise typer.Exit(2)
    return settings


def _restore(settings: Settings, source: str, force: bool) -> None:
    try:
        summary = restore_with_progress(settings.kafka, source, force=force, description="restore archive")
    except RestoreError as exc:
        raise ReplayError(f"archive not restored, nothing replayed: {exc}") from None
    if not summary.published and not summary.skipped_present:
        raise ReplayError(f"no archive files under {source}; nothing replayed")
    err.print(f"restored {summary.total} records from {source}")


async def _run(
    settings: Settings,
    request: ReplayRequest,
    swap: bool,
    live: str | None,
    check: bool,
    allow_undecodable: bool,
) -> ReplayOutcome:
    stop = stop_on_signals()
    jobs = f" ({request.jobs} jobs)" if request.jobs > 1 else ""
    err.print(f"replaying {', '.join(request.projections)} into schema {request.schema}{jobs}")
    with _progress() as progress:
        task = progress.add_task("replay", total=None)
        checked = progress.add_task("verify", total=None, visible=False)
        return await replay(
            settings,
            request,
            swap=swap,
            live_schema=live,
            check=check,
            allow_undecodable=allow_undecodable,
            on_plan=lambda total: progress.update(task, total=total, completed=0),
            on_advance=lambda n: progress.advance(task, n),
            on_verify_plan=lambda total: progress.update(checked, total=total, completed=0, visible=True),
            on_verify_advance=lambda n: progress.advance(checked, n),
            stop=stop,
        )


def _report(outcome: ReplayOutcome) -> None:
    p = outcome.progress
    for note in outcome.notes:
        err.print(f"[yellow]{note}[/]")
    err.print(
        f"{p.consumed} records read, {p.applied} applied, {p.skipped} already applied, {p.refused} refused"
    )
    if outcome.interrupted:
        err.print(f"[yellow]interrupted; rerun with --into-schema {outcome.schema} to resume[/]")
        raise typer.Exit(130)
    if outcome.verdict is not None:
        for table, found in outcome.verdict.sums.items():
            implied = outcome.verdict.expected.get(table)
            check = "" if implied is None else f"  (log: {implied})"
            err.print(f"{table:>20} {found.rows:>10} rows  checksum {found.checksum:x}{check}")
        for note in outcome.verdict.notes:
            err.print(f"[yellow]{note}[/]")
        if outcome.verdict.problems:
            err.print("[red]verification failed:[/]\n  " + "\n  ".join(outcome.verdict.problems))
            raise typer.Exit(1)
        err.print("[green]verified against the log[/]")
    if outcome.swap is not None:
        s = outcome.swap
        err.print(
            f"[green]swapped {len(s.tables)} tables into {s.live_schema}[/]; "
            f"the previous ones are kept in schema {s.replaced_schema}"
        )
        for table, others in s.merged.items():
            err.print(f"{table} is written by {', '.join(others)} too: the rebuilt rows were added to it")
    else:
        err.print(f"rebuilt read models are in schema {outcome.schema} (not swapped)")
