"""Replay, verify, swap: the steps behind `voiceagent replay` (the command itself is in replay_cli)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.settings import Settings
from projections.database import make_schema_engine
from projections.rebuild import Marker, ReplayError, prepare_schema, run_replay
from projections.replay_fold import ReplayProgress, ReplayRequest
from projections.replay_tables import tables_of
from projections.swap import RebuildBehindError, SwapResult, swap_into_live
from projections.verification import Undecodable, Verdict, count_log, verify

_SWAP_ATTEMPTS = 5
Report = Callable[[int], None]


def _ignore(n: int) -> None:
    return None


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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Run:
    """One `replay` call's fixed parts, handed to its steps."""

    settings: Settings
    engine: AsyncEngine
    swap: bool
    live_schema: str | None
    check: bool
    allow_undecodable: bool
    on_plan: Report
    on_advance: Report
    on_verify_plan: Report
    on_verify_advance: Report
    stop: asyncio.Event


async def replay(
    settings: Settings,
    request: ReplayRequest,
    *,
    swap: bool = False,
    live_schema: str | None = None,
    check: bool = True,
    allow_undecodable: bool = False,
    on_plan: Report = _ignore,
    on_advance: Report = _ignore,
    on_verify_plan: Report = _ignore,
    on_verify_advance: Report = _ignore,
    stop: asyncio.Event | None = None,
) -> ReplayOutcome:
    """Replay ``request`` into its schema (resuming it), verify it against the log, then swap if asked.

    A failure drops the schema when this call created it and nothing was replayed into it yet;
    otherwise the error says how to resume.
    """
    if swap and request.since is not None:
        raise ReplayError("--swap needs a full replay: a --since replay builds partial read models")
    if request.max_records < 1:  # checked before the schema exists, so nothing is left behind
        raise ReplayError(f"--batch must be at least 1, not {request.max_records}")
    engine = make_schema_engine(settings.database, None)
    run = _Run(
        settings=settings,
        engine=engine,
        swap=swap,
        live_schema=live_schema,
        check=check,
        allow_undecodable=allow_undecodable,
        on_plan=on_plan,
        on_advance=on_advance,
        on_verify_plan=on_verify_plan,
        on_verify_advance=on_verify_advance,
        stop=stop or asyncio.Event(),
    )
    try:
        return await _into_schema(run, request)
    finally:
        await engine.dispose()


async def _into_schema(run: _Run, request: ReplayRequest) -> ReplayOutcome:
    engine, schema = run.engine, request.schema
    created = not await _schema_exists(engine, schema)
    existed = await _has_tables(engine, schema)
    try:
        marker = await prepare_schema(run.settings, engine, schema, request.projections, request.since)
    except Exception:
        if created:  # a migration that failed half-way
            await _drop_quietly(engine, schema)
        raise
    try:
        return await _replay(run, request, marker, existed)
    except Exception as exc:
        hint = await _after_failure(engine, schema, created)
        if hint is None or f"--into-schema {schema}" in str(exc):
            raise
        if isinstance(exc, ReplayError):
            raise ReplayError(f"{exc}; {hint}") from exc
        exc.add_note(hint)
        raise


async def _replay(run: _Run, request: ReplayRequest, marker: Marker, existed: bool) -> ReplayOutcome:
    if run.swap:
        _refuse_partial(request.schema, marker)
        _refuse_unchecked_resume(request.schema, existed, run)
    outcome = ReplayOutcome(request.schema, existed, ReplayProgress())
    if existed and marker.since != request.since:
        outcome.notes.append(f"resumed with the schema's original start ({marker.since or 'the beginning'})")
        request = replace(request, since=marker.since)
    outcome.progress = await run_replay(
        run.settings, request, on_plan=run.on_plan, on_advance=run.on_advance, stop=run.stop
    )
    if run.stop.is_set():
        outcome.interrupted = True
        return outcome
    if outcome.progress.planned == 0 and not existed:
        raise ReplayError(_nothing_message(request))
    if run.check:
        outcome.verdict = await _verify(run, request, outcome.progress)
    if run.stop.is_set():  # Ctrl-C during the check: no swap; the schema can be resumed
        outcome.interrupted = True
        return outcome
    if run.swap:
        _refuse_unless_verified(request.schema, outcome, run.allow_undecodable)
        live = run.live_schema or await _current_schema(run.engine)
        outcome.swap = await _swap(run, request, live)
    return outcome


def _refuse_partial(schema: str, marker: Marker) -> None:
    """A --since rebuild stays partial when resumed without --since: it must never go live."""
    if marker.since is not None:
        raise ReplayError(
            f"schema {schema} is a partial rebuild (--since {marker.since.isoformat()}): it lacks "
            "everything before that time, so it cannot be swapped into live read models. Resume it "
            f"with --into-schema {schema} without --swap to inspect it, or replay from the beginning "
            "into a new schema to swap"
        )


def _refuse_unchecked_resume(schema: str, existed: bool, run: _Run) -> None:
    """Without the check, only this run's records are seen: a resumed run would miss earlier
    runs' records that do not decode, and swap a rebuild that lacks them."""
    if existed and not run.check and not run.allow_undecodable:
        raise ReplayError(
            f"schema {schema} holds an earlier run's replay, and only the check sees whether any of "
            "its records did not decode: --swap of a resumed rebuild needs it. Drop --no-verify, or "
            "add --allow-undecodable to swap without such records"
        )


def _refuse_unless_verified(schema: str, outcome: ReplayOutcome, allow_undecodable: bool) -> None:
    verdict = outcome.verdict
    if verdict is not None and verdict.problems:
        raise ReplayError(
            "verification failed, not swapping: " + "; ".join(verdict.problems) + f"; the rebuild is "
            f"kept in schema {schema} to inspect (rerun with --into-schema {schema} to check it again)"
        )
    # The check's pass covers every replayed offset, resumed runs' too; without it, this run's.
    undecodable = verdict.undecodable if verdict is not None else outcome.progress.undecodable
    if not undecodable.count:
        return
    if allow_undecodable:
        outcome.notes.append(f"swapping without {undecodable.count} records that do not decode")
        return
    raise ReplayError(_undecodable_message(schema, undecodable))


def _undecodable_message(schema: str, undecodable: Undecodable) -> str:
    return (
        f"{undecodable.count} records do not decode, so the rebuilt read models lack them (written "
        f"by a newer schema? corrupt?): {undecodable.describe()}. Not swapping. Replay with a version "
        f"that reads them, or, if the live projections dead-letter them too and losing them is "
        f"right, rerun with --into-schema {schema} --swap --allow-undecodable"
    )


def verified_tables(projections: tuple[str, ...]) -> list[str]:
    """Every table the projections write, shared ones included: their checksums are printed."""
    return tables_of(projections)


async def _verify(run: _Run, request: ReplayRequest, progress: ReplayProgress) -> Verdict | None:
    """The check against the log, or None when stopped during its pass over the log."""
    ranges = {tp: (start, progress.reached.get(tp, start)) for tp, start in progress.origin.items()}
    run.on_verify_plan(sum(max(0, end - start) for start, end in ranges.values()))
    counts = await count_log(run.settings.kafka, ranges, stop=run.stop, on_advance=run.on_verify_advance)
    if run.stop.is_set():
        return None
    return await verify(run.engine, request.schema, verified_tables(request.projections), counts)


async def _swap(run: _Run, request: ReplayRequest, live: str) -> SwapResult:
    """Swap; when the live models moved ahead meanwhile, replay the rest first, then try again."""
    last: Exception | None = None
    for _ in range(_SWAP_ATTEMPTS):
        if run.stop.is_set():
            raise ReplayError("stopped before the swap")
        try:
            return await swap_into_live(
                run.engine,
                rebuild=request.schema,
                live=live,
                projections=request.projections,
                at=datetime.now(UTC),
            )
        except RebuildBehindError as exc:
            last = exc
        except DBAPIError as exc:  # lock timeout or a deadlock with a live projection: try again
            last = exc
        caught_up = await run_replay(
            run.settings, request, on_plan=run.on_plan, on_advance=run.on_advance, stop=run.stop
        )
        if caught_up.undecodable.count and not run.allow_undecodable:  # read after the check
            raise ReplayError(_undecodable_message(request.schema, caught_up.undecodable))
    raise ReplayError(f"could not swap after {_SWAP_ATTEMPTS} attempts: {last}")


async def _after_failure(engine: AsyncEngine, schema: str, created: bool) -> str | None:
    """Drop a schema this run created while it holds nothing replayed; else how to resume it."""
    if created and not await _holds_replayed_rows(engine, schema) and await _drop_quietly(engine, schema):
        return None
    return f"the rebuild is kept in schema {schema}: rerun with --into-schema {schema} to resume"


async def _drop_quietly(engine: AsyncEngine, schema: str) -> bool:
    try:
        await drop_schema(engine, schema)
    except Exception:  # the database itself may be what failed; the original error says more
        return False
    return True


async def _holds_replayed_rows(engine: AsyncEngine, schema: str) -> bool:
    """Rows and checkpoints commit together, so a checkpoint is the sign anything was replayed."""
    with contextlib.suppress(Exception):
        async with engine.connect() as connection:
            found = await connection.execute(
                text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f'"{schema}".projection_checkpoint'}
            )
            if not found.scalar_one():
                return False
            rows = await connection.execute(text(f'SELECT count(*) FROM "{schema}".projection_checkpoint'))
            return bool(rows.scalar_one())
    return True  # cannot tell: keep it


async def _schema_exists(engine: AsyncEngine, schema: str) -> bool:
    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": schema}
        )
        return bool(found.scalar_one())


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
