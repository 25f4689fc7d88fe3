"""The projections service: every projection's runner, wired from Settings, until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from infra.db import make_session_factory
from infra.deadletter import DeadLetterPublisher
from infra.kafka import make_producer, start_producer
from infra.migrate import upgrade_database
from infra.settings import Settings
from projections.agent_projection import AgentProjection
from projections.call_projection import CallProjection
from projections.campaign_projection import CampaignProjection
from projections.database import make_schema_engine
from projections.knowledge_projection import KnowledgeProjection
from projections.runner import Projection, ProjectionRunner
from projections.summary_projection import SummaryProjection
from schemas.codec import Codec

log = logging.getLogger(__name__)

PROJECTIONS = ("agents", "knowledge", "calls", "campaigns", "summaries")
_FACTORIES: dict[str, Callable[..., Projection]] = {
    "agents": AgentProjection,
    "knowledge": KnowledgeProjection,
    "calls": CallProjection,
    "campaigns": CampaignProjection,
    "summaries": SummaryProjection,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceOptions:
    """What `python -m projections` was asked to do (the defaults run everything live)."""

    only: tuple[str, ...] = PROJECTIONS
    schema: str | None = None
    migrate: bool = False
    group_prefix: str = "projection"
    topic: str | None = None
    max_records: int = 1000
    linger_s: float = 0.1
    """After a batch smaller than ``max_records``, let the next one gather this long: every
    batch costs a transaction, its positions and checkpoints whatever its size, and under a
    steady trickle of call events batches of one or two records made that most of the work.
    Read models lag by at most this much more."""


def build_projections(options: ServiceOptions) -> list[Projection]:
    """The selected projections; ``topic`` (one projection only) reads another topic, for tests and drills."""
    if options.topic is not None and len(options.only) != 1:
        raise ValueError("--topic needs exactly one projection (--only)")
    unknown = set(options.only) - set(PROJECTIONS)
    if unknown:
        raise ValueError(f"unknown projections: {', '.join(sorted(unknown))}")
    topic = {"topic": options.topic} if options.topic is not None else {}
    return [_FACTORIES[name](**topic) for name in options.only]


async def run_projections(settings: Settings, options: ServiceOptions, stop: asyncio.Event) -> None:
    """Run the selected projections until ``stop`` is set; the first one to fail stops them all."""
    projections = build_projections(options)
    if options.migrate:
        await asyncio.to_thread(upgrade_database, settings.database, schema=options.schema)
    engine = make_schema_engine(settings.database, options.schema)
    producer = make_producer(settings.kafka)
    await start_producer(producer)
    codec = Codec.single_object()
    try:
        sessions = make_session_factory(engine)
        tasks = []
        for projection in projections:
            group = f"{options.group_prefix}.{projection.name}"
            runner = ProjectionRunner(
                projection,
                session_factory=sessions,
                dead_letters=DeadLetterPublisher(producer, codec, group),
                codec=codec,
            )
            run = runner.run(
                settings.kafka,
                stop=stop,
                group_id=group,
                max_records=options.max_records,
                linger_s=options.linger_s,
            )
            tasks.append(asyncio.create_task(run, name=f"projection.{projection.name}"))
        log.info("projections running: %s", ", ".join(p.name for p in projections))
        await _until_stopped_or_failed(tasks, stop)
    finally:
        await producer.stop()
        await engine.dispose()


async def _until_stopped_or_failed(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    # Runners see ``stop`` between batches, so a batch in flight commits before they return.
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopper
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise failures[0]
