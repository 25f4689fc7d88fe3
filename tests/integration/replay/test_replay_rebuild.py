"""Replay into a fresh schema: identical to the live read models, resumable, and swapped in atomically."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.settings import Settings
from projections import queries
from tests.integration.readside.call_stream import unique
from tests.integration.readside.conftest import schema_sessions
from tests.integration.replay.replay_support import Log, checkpointed, dump
from voiceagent.replay import replay

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("jobs", [1, 2])
async def test_replay_into_a_fresh_schema_gives_read_models_identical_to_the_live_ones(
    settings: Settings, live: tuple[Log, str, async_sessionmaker[AsyncSession]], jobs: int
) -> None:
    log, _, live_sessions = live
    rebuild = unique("rebuild").replace("-", "_")
    outcome = await replay(settings, log.request(rebuild, jobs=jobs))

    assert not outcome.resumed
    assert not outcome.interrupted
    assert outcome.progress.consumed == log.records
    assert outcome.verdict is not None
    assert outcome.verdict.problems == []
    assert outcome.verdict.expected["call_event"] == outcome.verdict.sums["call_event"].rows > 0
    async with schema_sessions(settings, rebuild) as rebuilt:
        assert await dump(rebuilt) == await dump(live_sessions)


@pytest.mark.parametrize("jobs", [1, 2])
async def test_replay_stopped_after_n_records_resumes_from_its_checkpoints_and_ends_identical(
    settings: Settings, live: tuple[Log, str, async_sessionmaker[AsyncSession]], jobs: int
) -> None:
    log, _, live_sessions = live
    rebuild = unique("rebuild").replace("-", "_")
    first = await replay(settings, log.request(rebuild, max_records=50, stop_after=200, jobs=jobs))
    assert first.interrupted
    assert 200 <= first.progress.consumed < log.records
    async with schema_sessions(settings, rebuild) as rebuilt:
        at_stop = await dump(rebuilt)
        assert checkpointed(at_stop) == first.progress.consumed  # rows and offsets committed together

        second = await replay(settings, log.request(rebuild, max_records=50, jobs=jobs))
        assert second.resumed
        assert not second.interrupted
        assert second.progress.consumed == log.records - first.progress.consumed
        assert second.verdict is not None
        assert second.verdict.problems == []
        assert await dump(rebuilt) == await dump(live_sessions)


async def test_replay_swap_moves_the_rebuilt_tables_into_the_live_schema_in_one_transaction(
    settings: Settings, live: tuple[Log, str, async_sessionmaker[AsyncSession]]
) -> None:
    log, live_schema, live_sessions = live
    async with live_sessions() as session:
        call_id = (
            await session.execute(text("SELECT call_id FROM call ORDER BY call_id LIMIT 1"))
        ).scalar_one()
        tenant = (await session.execute(text("SELECT tenant_id FROM call LIMIT 1"))).scalar_one()
        before = await dump(live_sessions)
        # A damaged live read model, which the rebuild repairs: one call lost its row and timeline.
        await session.execute(text("DELETE FROM call WHERE call_id = :c"), {"c": call_id})
        await session.execute(text("DELETE FROM call_event WHERE call_id = :c"), {"c": call_id})
        await session.commit()
        assert await queries.get_call(session, tenant, call_id) is None  # the pooled connection has read it

    rebuild = unique("rebuild").replace("-", "_")
    outcome = await replay(settings, log.request(rebuild), swap=True, live_schema=live_schema)

    assert outcome.swap is not None
    assert outcome.swap.live_schema == live_schema
    async with live_sessions() as session:  # the same pool: connections opened before the swap
        found = await queries.get_call(session, tenant, call_id)
        assert found is not None
        assert found["call_id"] == call_id
        assert len(await queries.call_timeline(session, tenant, call_id)) == 10
    assert await dump(live_sessions) == before
    async with schema_sessions(settings, outcome.swap.replaced_schema) as replaced, replaced() as session:
        kept = await session.execute(text("SELECT count(*) FROM call WHERE call_id = :c"), {"c": call_id})
        assert kept.scalar_one() == 0  # the damaged tables are kept aside, not dropped
        old = await session.execute(text("SELECT count(*) FROM projection_checkpoint"))
        assert old.scalar_one() > 0
    async with schema_sessions(settings, rebuild) as rebuilt, rebuilt() as session:
        left = await session.execute(text("SELECT swapped_into FROM replay_marker"))
        assert left.scalar_one() == live_schema
        tables = await session.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = :s AND tablename = 'call'"),
            {"s": rebuild},
        )
        assert tables.scalar_one() == 0
