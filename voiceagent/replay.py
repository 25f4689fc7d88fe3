"""`voiceagent replay`: rebuild read models from the log into a fresh schema, verify, optionally swap."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.db import schema_name_problem
from infra.eventlog.cli import when_option
from infra.eventlog.restore import RestoreError, restore_archive
from infra.process import stop_on_signals
from infra.settings import Settings
from projections.database import make_schema_engine
from projections.rebuild import (
    OWNED_TABLES,
    SHARED_RESULTS,
    ReplayError,
    prepare_schema,
    resolve_names,
    run_replay,
)
from projections.replay_fold import ReplayProgress, ReplayRequest
from projections.swap import RebuildBehindError, SwapResult, swap_into_live
from projections.verification import Verdict, count_log, verify

err = Console(stderr=True)
_SWAP_ATTEMPTS = 5
_LOG_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # Kafka timestamps count from here
# The fold is CPU-bound Python, so a process per core is the ceiling; two leave PostgreSQL and the
# broker room on a small machine, and more writers mostly queue on the database beyond that.
DEFAULT_JOBS = min(2, os.cpu_count() or 1)


@dataclass
class ReplayOutcome:
    """What a replay did: its progress, whether it was interrupted, what was verified and swapped."""

    schema: str
    resumed: bool
    progress: ReplayProgress
    interrupted: bool = False
    verdict: Verdict | None = None
    swap: SwapResult | None = None
    notes: list[str] = field(default_factory=list)


async def replay(
    settings: Settings,
    request: ReplayRequest,
    *,
    swap: bool = False,
    live_schema: str | None = None,
    check: bool = True,
    on_plan: Callable[[int], None] = lambda total: None,
    on_advance: Callable[[int], None] = lambda n: None,
    stop: asyncio.Event | None = None,
) -> ReplayOutcome:
    """Replay ``request`` into its schema (resuming it), verify it against the log, then swap if asked."""
    if swap and request.since is not None:
        raise ReplayError("--swap needs a full replay: a --since replay builds partial read models")
    if request.max_records < 1:  # checked before the schema exists, so nothing is left behind
        raise ReplayError(f"--batch must be at least 1, not {request.max_records}")
    stop = stop or asyncio.Event()
    engine = make_schema_engine(settings.database, None)
    try:
        existed = await _has_tables(engine, request.schema)
        marker = await prepare_schema(settings, engine, request.schema, request.projections, request.since)
        outcome = ReplayOutcome(request.schema, existed, ReplayProgress())
        if existed and marker.since != request.since:
            outcome.notes.append(
                f"resumed with the schema's original start ({marker.since or 'the beginning'})"
            )
            request = replace(request, since=marker.since)
        outcome.progress = await run_replay(
            settings, request, on_plan=on_plan, on_advance=on_advance, stop=stop
        )
        if stop.is_set():
            outcome.interrupted = True
            return outcome
        if not existed and outcome.progress.planned == 0:
            await drop_schema(engine, request.schema)
            raise ReplayError(_nothing_message(request))
        if check:
            outcome.verdict = await _verify(settings, engine, request, outcome.progress)
        if stop.is_set():  # Ctrl-C during the check: no swap; the schema can be resumed
            outcome.interrupted = True
            return outcome
        if swap:
            if outcome.verdict is not None and outcome.verdict.problems:
                raise ReplayError("verification failed, not swapping: " + "; ".join(outcome.verdict.problems))
            live = live_schema or await _current_schema(engine)
            outcome.swap = await _swap(settings, engine, request, live, on_plan, on_advance, stop)
        return outcome
    finally:
        await engine.dispose()


def verified_tables(projections: tuple[str, ...]) -> list[str]:
    tables = [t for p in projections for t in OWNED_TABLES[p]]
    return tables + ([SHARED_RESULTS] if {"agents", "knowledge"} & set(projections) else [])


async def _verify(
    settings: Settings, engine: AsyncEngine, request: ReplayRequest, progress: ReplayProgress
) -> Verdict:
    ranges = {tp: (start, progress.reached.get(tp, start)) for tp, start in progress.origin.items()}
    counts = await count_log(settings.kafka, ranges)
    return await verify(engine, request.schema, verified_tables(request.projections), counts)


async def _swap(
    settings: Settings,
    engine: AsyncEngine,
    request: ReplayRequest,
    live: str,
    on_plan: Callable[[int], None],
    on_advance: Callable[[int], None],
    stop: asyncio.Event,
) -> SwapResult:
    """Swap; when the live models moved ahead meanwhile, replay the rest first, then try again."""
    last: Exception | None = None
    for _ in range(_SWAP_ATTEMPTS):
        if stop.is_set():
            raise ReplayError("stopped before the swap; the rebuilt schema is kept and can be resumed")
        try:
            return await swap_into_live(
                engine,
                rebuild=request.schema,
                live=live,
                projections=request.projections,
                at=datetime.now(UTC),
            )
        except RebuildBehindError as exc:
            last = exc
        except DBAPIError as exc:  # lock timeout or a deadlock with a live projection: try again
            last = exc
        await run_replay(settings, request, on_plan=on_plan, on_advance=on_advance, stop=stop)
    raise ReplayError(f"could not swap after {_SWAP_ATTEMPTS} attempts: {last}")


async def _has_tables(engine: AsyncEngine, schema: str) -> bool:
    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = :s"), {"s": schema}
        )
        return bool(found.scalar_one())


async def _current_schema(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        return str((await connection.execute(text("SELECT current_schema()"))).scalar_one())


async def drop_schema(engine: AsyncEngine, schema: str) -> None:
    """Drop a rebuild schema this run created and left empty-handed."""
    async with engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _nothing_message(request: ReplayRequest) -> str:
    what = ", ".join(request.projections)
    if request.since is not None:
        return f"no events at or after {request.since.isoformat()} for {what}; nothing replayed"
    return f"the log holds no events for {what}; nothing replayed"


def replay_command(
    projections: list[str] = typer.Argument(
        ..., help="calls, agents, knowledge (and any other listed in OWNED_TABLES), or all"
    ),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="replay the whole log (default)"),
    since: str | None = typer.Option(None, "--since", help="ISO time: start there (partial models!)"),
    into_schema: str | None = typer.Option(None, "--into-schema", help="default rebuild_<timestamp>"),
    swap: bool = typer.Option(False, "--swap", help="swap the rebuilt tables into the live schema"),
    from_archive: str | None = typer.Option(None, "--from-archive", help="restore this archive first"),
    force: bool = typer.Option(False, "--force", help="restore into topics that already hold records"),
    live_schema: str | None = typer.Option(None, "--live-schema", help="default: the search path's"),
    check: bool = typer.Option(True, "--verify/--no-verify", help="check the tables against the log"),
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
        outcome = asyncio.run(_run(settings, request, swap, live_schema, check))
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
    with _progress() as progress:
        task = progress.add_task("restore archive", total=None)
        try:
            summary = asyncio.run(
                restore_archive(
                    settings.kafka,
                    source,
                    force=force,
                    on_plan=lambda total: progress.update(task, total=total),
                    on_advance=lambda n: progress.advance(task, n),
                )
            )
        except RestoreError as exc:
            raise ReplayError(f"archive not restored, nothing replayed: {exc}") from None
    if not summary.published and not summary.skipped_present:
        raise ReplayError(f"no archive files under {source}; nothing replayed")
    err.print(f"restored {summary.total} records from {source}")


async def _run(
    settings: Settings, request: ReplayRequest, swap: bool, live: str | None, check: bool
) -> ReplayOutcome:
    stop = stop_on_signals()
    jobs = f" ({request.jobs} jobs)" if request.jobs > 1 else ""
    err.print(f"replaying {', '.join(request.projections)} into schema {request.schema}{jobs}")
    with _progress() as progress:
        task = progress.add_task("replay", total=None)
        return await replay(
            settings,
            request,
            swap=swap,
            live_schema=live,
            check=check,
            on_plan=lambda total: progress.update(task, total=total, completed=0),
            on_advance=lambda n: progress.advance(task, n),
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
    else:
        err.print(f"rebuilt read models are in schema {outcome.schema} (not swapped)")
