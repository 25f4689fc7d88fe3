"""A parallel replay: the planned partitions split across child processes, each folding its share.

Partitions are independent and checkpointed one by one, so each child folds its own into the
same rebuild schema with its own consumer, engine and runners, exactly as a single-process
replay does (``projections.replay_fold``). The parent only plans, relays a stop and adds up.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import sys
import traceback
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any, TypeVar

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import async_sessionmaker

from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.settings import Settings
from projections.database import make_schema_engine
from projections.replay_fold import Offsets, Plan, ReplayProgress, ReplayRequest, fold_plans, projections_for

K = TypeVar("K", bound=Hashable)
Share = tuple[tuple[str, Offsets, Offsets], ...]
"""One child's work: per projection name, where each of its partitions starts and ends."""

_POLL_S = 0.05
_STOP_GRACE_S = 60.0  # after a stop, a child finishes the transaction in flight; a stuck one is killed
_EXIT_S = 10.0


def split(loads: Mapping[K, int], jobs: int) -> list[list[K]]:
    """Keys spread over at most ``jobs`` shares of nearly equal load (largest first, to the lightest).

    Keys without load are left out, and so are shares that would be empty.
    """
    shares: list[list[K]] = [[] for _ in range(max(1, jobs))]
    totals = [0] * len(shares)
    for key in sorted((k for k, n in loads.items() if n > 0), key=lambda k: -loads[k]):
        lightest = totals.index(min(totals))
        shares[lightest].append(key)
        totals[lightest] += loads[key]
    return [share for share in shares if share]


def shares_of(plans: Sequence[Plan], jobs: int) -> list[Share]:
    """The partitions still to fold, split by records left; each share keeps the plans' order."""
    left = {(p.name, tp): ends[tp] - starts[tp] for p, starts, ends in plans for tp in ends}
    return [_share(plans, set(keys)) for keys in split(left, jobs)]


def _share(plans: Sequence[Plan], mine: set[tuple[str, TopicPartition]]) -> Share:
    return tuple(
        (p.name, {tp: starts[tp] for tp in ours}, {tp: ends[tp] for tp in ours})
        for p, starts, ends in plans
        if (ours := [tp for tp in ends if (p.name, tp) in mine])
    )


@dataclass
class _Child:
    process: SpawnProcess
    results: Connection
    share: Share
    outcome: ReplayProgress | None = None
    error: str | None = None
    over: bool = False

    def failure(self) -> str | None:
        if self.error is None:
            return None
        parts = "; ".join(
            f"{name} " + ", ".join(f"{tp.topic}[{tp.partition}]" for tp in starts)
            for name, starts, _ in self.share
        )
        code = self.process.exitcode
        return f"replay job {self.process.name} ({parts}) failed (exit code {code}): {self.error}"


async def run_jobs(
    settings: Settings,
    request: ReplayRequest,
    shares: Sequence[Share],
    progress: ReplayProgress,
    on_advance: Callable[[int], None],
    stop: asyncio.Event,
) -> list[str]:
    """Fold each share in a spawned child until all are done or ``stop``; returns the failures."""
    context = multiprocessing.get_context("spawn")  # the parent runs an event loop and aiokafka
    relay = context.Event()
    children = []
    try:
        for n, share in enumerate(shares):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=child_main,
                args=(settings.model_dump(), request, share, send, relay),
                name=f"{n + 1}/{len(shares)}",
                daemon=True,
            )
            process.start()
            send.close()  # the child holds the only writer, so its death reads as end of file
            children.append(_Child(process, receive, share))
        await _supervise(children, request, on_advance, stop, relay)
    finally:
        relay.set()
        await _reap(children)
    for child in children:
        if child.outcome is not None:
            _add(progress, child.outcome)
    return [why for child in children if (why := child.failure()) is not None]


async def _supervise(
    children: list[_Child],
    request: ReplayRequest,
    on_advance: Callable[[int], None],
    stop: asyncio.Event,
    relay: ProcessEvent,
) -> None:
    consumed, deadline, clock = 0, None, asyncio.get_running_loop().time
    while not all(c.over for c in children):
        for child in children:
            consumed += _drain(child, on_advance)
        # A child also honours stop_after on its own count, which never exceeds this total.
        if request.stop_after is not None and consumed >= request.stop_after:
            stop.set()
        if stop.is_set() or any(c.error is not None for c in children):
            relay.set()  # the others commit the batch in flight and stop, so a rerun resumes
            deadline = deadline or clock() + _STOP_GRACE_S
        if deadline is not None and clock() > deadline:
            return  # whoever has not stopped by now is killed
        await asyncio.sleep(_POLL_S)


def _drain(child: _Child, on_advance: Callable[[int], None]) -> int:
    advanced = 0
    try:
        while not child.over and child.results.poll():
            kind, value = child.results.recv()
            if kind == "advance":
                advanced += value
                on_advance(value)
            elif kind == "done":
                child.outcome = value
            else:
                child.error = value
    except (EOFError, OSError):
        child.over = True
        if child.outcome is None and child.error is None:
            child.error = "it ended without reporting (killed?)"
    return advanced


async def _reap(children: list[_Child]) -> None:
    for child in children:
        await asyncio.to_thread(child.process.join, _EXIT_S)
        if child.process.is_alive():
            child.process.kill()
            await asyncio.to_thread(child.process.join)
            child.error = child.error or "it did not stop in time and was killed"
        child.results.close()


def _add(progress: ReplayProgress, done: ReplayProgress) -> None:
    progress.applied += done.applied
    progress.skipped += done.skipped
    progress.refused += done.refused
    progress.undecodable.merge(done.undecodable)
    progress.consumed += done.consumed
    progress.reached.update(done.reached)


def child_main(
    settings: dict[str, Any], request: ReplayRequest, share: Share, results: Connection, relay: ProcessEvent
) -> None:
    """A child: fold ``share``, send ("advance", n) per batch, then ("done", progress) or ("failed", why)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent relays it
    try:
        done = asyncio.run(_fold_share(Settings.model_validate(settings), request, share, results, relay))
        results.send(("done", done))
    except BaseException as exc:
        traceback.print_exc(file=sys.stderr)
        with contextlib.suppress(OSError):
            results.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    finally:
        results.close()


async def _fold_share(
    settings: Settings, request: ReplayRequest, share: Share, results: Connection, relay: ProcessEvent
) -> ReplayProgress:
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch(relay, stop))
    built = {p.name: p for p in projections_for(request)}
    plans = [(built[name], starts, ends) for name, starts, ends in share]
    progress = ReplayProgress()
    engine = make_schema_engine(settings.database, request.schema)
    consumer = make_consumer(settings.kafka, group_id=None, max_partition_fetch_bytes=8 << 20)

    def advance(n: int) -> None:
        results.send(("advance", n))

    try:
        await start_consumer(consumer)
        await fold_plans(
            consumer,
            async_sessionmaker(engine, expire_on_commit=False),
            plans,
            request,
            progress,
            advance,
            stop,
        )
    finally:
        watcher.cancel()
        await stop_consumer(consumer)
        await engine.dispose()
    return progress


async def _watch(relay: ProcessEvent, stop: asyncio.Event) -> None:
    parent = multiprocessing.parent_process()  # an orphan stops too, rather than fold on unobserved
    # A process event has nothing to await, and a thread blocked on it would hold up the exit.
    while not relay.is_set() and (parent is None or parent.is_alive()):  # noqa: ASYNC110
        await asyncio.sleep(_POLL_S)
    stop.set()
