"""A replay that fails leaves no empty schema behind, and its check over the log reports and stops."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.settings import Settings
from projections import verification
from projections.rebuild import ReplayError
from projections.replay_fold import ReplayRequest
from tests.integration.readside.call_stream import unique
from tests.integration.replay.replay_support import Log, schema_exists
from voiceagent import replay as replay_module
from voiceagent.replay import replay

pytestmark = pytest.mark.integration

Live = tuple[Log, str, async_sessionmaker[AsyncSession]]


async def test_a_replay_failing_after_creating_its_schema_drops_it_when_nothing_was_replayed(
    settings: Settings,
) -> None:
    rebuild = unique("rebuild").replace("-", "_")
    request = ReplayRequest(
        schema=rebuild, projections=("calls",), topics={"calls": "voice.no-such-topic.v1"}
    )

    with pytest.raises(ReplayError, match=r"topic voice\.no-such-topic\.v1 \(calls\) does not exist"):
        await replay(settings, request)

    # It used to leave the migrated schema (22 tables) behind, unnamed in the error.
    assert not await asyncio.to_thread(schema_exists, settings, rebuild)


async def test_a_replay_failing_after_replaying_keeps_its_schema_and_says_how_to_resume(
    settings: Settings, live: Live
) -> None:
    log, _, _ = live
    rebuild = unique("rebuild").replace("-", "_")
    await replay(settings, log.request(rebuild, stop_after=100, max_records=50))  # some rows, then Ctrl-C
    missing = dict(log.topics, calls="voice.no-such-topic.v1")

    with pytest.raises(ReplayError) as failed:
        await replay(settings, dataclasses.replace(log.request(rebuild), topics=missing))

    assert f"rerun with --into-schema {rebuild} to resume" in str(failed.value)
    assert await asyncio.to_thread(schema_exists, settings, rebuild)


async def test_a_stop_as_the_check_starts_ends_its_pass_over_the_log_at_once(
    settings: Settings, live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _, _ = live
    stop = asyncio.Event()
    read: list[int] = []
    original = verification.count_log

    async def ctrl_c_then_count(*args: Any, **kwargs: Any) -> Any:
        stop.set()  # what stop_on_signals' SIGINT handler does
        counts = await original(*args, **kwargs)
        read.append(sum(counts.expected_rows().values()) + counts.refused)
        return counts

    monkeypatch.setattr(replay_module, "count_log", ctrl_c_then_count)
    outcome = await replay(settings, log.request(unique("rebuild").replace("-", "_")), stop=stop)

    assert read == [0], "the check read the whole log again before honouring the stop"
    assert outcome.interrupted
    assert outcome.verdict is None  # not a verdict on counts cut short


async def test_the_check_reports_its_own_progress_over_every_replayed_record(
    settings: Settings, live: Live
) -> None:
    log, _, _ = live
    plans: list[int] = []
    advances: list[int] = []

    outcome = await replay(
        settings,
        log.request(unique("rebuild").replace("-", "_")),
        on_verify_plan=plans.append,
        on_verify_advance=advances.append,
    )

    assert outcome.verdict is not None
    assert outcome.verdict.problems == []
    assert plans == [log.records]
    assert sum(advances) == log.records
