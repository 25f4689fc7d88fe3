"""A replay split across processes: the same progress as one process, and a crashed job fails it clearly."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.settings import Settings
from projections.rebuild import ReplayError
from tests.integration.readside.call_stream import unique
from tests.integration.readside.conftest import schema_sessions
from tests.integration.replay.replay_support import Log, dump
from voiceagent.replay import replay

pytestmark = pytest.mark.integration


async def test_replay_in_two_jobs_reports_the_same_progress_as_in_one_process(
    settings: Settings, live: tuple[Log, str, async_sessionmaker[AsyncSession]]
) -> None:
    log, _, _ = live
    single = await replay(settings, log.request(unique("rebuild").replace("-", "_"), jobs=1))
    plans: list[int] = []
    advances: list[int] = []

    split = await replay(
        settings,
        log.request(unique("rebuild").replace("-", "_"), jobs=2, max_records=40),
        on_plan=plans.append,
        on_advance=advances.append,
    )

    assert plans == [log.records]
    assert len(advances) > 2
    assert sum(advances) == split.progress.consumed == log.records
    one, two = single.progress, split.progress
    assert (two.planned, two.applied, two.skipped, two.refused) == (
        one.planned,
        one.applied,
        one.skipped,
        one.refused,
    )
    assert (two.origin, two.reached) == (one.origin, one.reached)
    assert split.verdict is not None
    assert split.verdict.problems == []


async def test_a_killed_job_fails_the_replay_naming_its_partitions_and_a_rerun_resumes_identical(
    settings: Settings, live: tuple[Log, str, async_sessionmaker[AsyncSession]]
) -> None:
    log, _, live_sessions = live
    rebuild = unique("rebuild").replace("-", "_")

    def kill_the_first_job(n: int) -> None:
        for child in multiprocessing.active_children():
            if child.name == "1/2":
                child.kill()

    with pytest.raises(ReplayError) as failed:
        await replay(settings, log.request(rebuild, jobs=2, max_records=5), on_advance=kill_the_first_job)

    assert "replay job 1/2 (" in str(failed.value)
    assert f"{log.topics['calls']}[" in str(failed.value)  # the first share holds the largest partition
    assert f"--into-schema {rebuild} to resume" in str(failed.value)
    resumed = await replay(settings, log.request(rebuild, jobs=2))
    assert resumed.resumed
    assert 0 < resumed.progress.consumed < log.records
    async with schema_sessions(settings, rebuild) as rebuilt:
        assert await dump(rebuilt) == await dump(live_sessions)
