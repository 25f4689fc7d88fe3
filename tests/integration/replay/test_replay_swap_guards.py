"""What `replay --swap` must refuse or keep: a partial rebuild, records that do not decode, others' rows."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.settings import Settings
from projections.campaign_projection import CampaignProjection
from projections.rebuild import ReplayError
from projections.replay_fold import ReplayRequest
from schemas import dialer
from schemas.codec import Codec
from tests.integration.readside.call_stream import scalar, unique
from tests.integration.readside.conftest import schema_sessions
from tests.integration.replay.replay_support import Log, dump
from tests.support.call_stream import call_events
from tests.support.examples import example_record
from voiceagent.replay import replay

pytestmark = pytest.mark.integration

Live = tuple[Log, str, async_sessionmaker[AsyncSession]]
_DELETE_ONE_AGENT_RESULT = text(
    "DELETE FROM command_result WHERE correlation_id = (SELECT min(correlation_id) FROM command_result "
    "JOIN agent ON agent.agent_id = command_result.aggregate_id) RETURNING correlation_id"
)


def _rebuild() -> str:
    return unique("rebuild").replace("-", "_")


@pytest.mark.parametrize("late_partitions", [1, 3], ids=["one-partition-has-late-events", "every-one-has"])
async def test_resuming_a_since_rebuild_with_swap_is_refused_and_live_is_untouched(
    settings: Settings, live: Live, producer: AIOKafkaProducer, codec: Codec, late_partitions: int
) -> None:
    log, live_schema, live_sessions = live
    await asyncio.sleep(1.1)  # Kafka timestamps are in milliseconds: keep the log's calls before it
    since = datetime.now(UTC)
    await asyncio.sleep(1.1)
    for partition in range(late_partitions):
        call_id = unique("late-call")
        for event in call_events("tenant-late", call_id, "agent-late"):
            await producer.send_and_wait(
                log.topics["calls"], codec.encode(event), call_id.encode(), partition=partition
            )
    rebuild = _rebuild()
    request = ReplayRequest(schema=rebuild, projections=("calls",), topics={"calls": log.topics["calls"]})
    partial = await replay(settings, dataclasses.replace(request, since=since))
    assert partial.progress.consumed == 10 * late_partitions
    before = await dump(live_sessions)

    # Rerun without --since: the schema's own start is --since's, so it is still partial.
    with pytest.raises(ReplayError) as refused:
        await replay(settings, request, swap=True, live_schema=live_schema)

    assert f"schema {rebuild} is a partial rebuild (--since {since.isoformat()})" in str(refused.value)
    assert "cannot be swapped" in str(refused.value)
    assert await dump(live_sessions) == before
    assert await scalar(live_sessions, "SELECT count(*) FROM call") == 60


@pytest.mark.parametrize(("check", "jobs"), [(True, 1), (False, 2)], ids=["verified", "no-verify-2-jobs"])
async def test_records_that_do_not_decode_block_the_swap_until_allowed(
    settings: Settings, live: Live, producer: AIOKafkaProducer, check: bool, jobs: int
) -> None:
    log, live_schema, live_sessions = live
    bad = await producer.send_and_wait(log.topics["calls"], b"\xc3\x01" + b"\x11" * 8 + b"garbage", b"k")
    before = await dump(live_sessions)
    rebuild = _rebuild()

    with pytest.raises(ReplayError) as refused:
        await replay(
            settings, log.request(rebuild, jobs=jobs), swap=True, live_schema=live_schema, check=check
        )

    message = str(refused.value)
    assert "1 records do not decode" in message
    assert f"{bad.topic}[{bad.partition}]@{bad.offset}: " in message  # where, and why after the colon
    assert f"rerun with --into-schema {rebuild} --swap --allow-undecodable" in message
    assert await dump(live_sessions) == before

    if not check:  # resumed, this run would read nothing: unchecked, the record would go unseen
        with pytest.raises(ReplayError, match="--swap of a resumed rebuild needs it"):
            await replay(
                settings, log.request(rebuild, jobs=jobs), swap=True, live_schema=live_schema, check=False
            )
        assert await dump(live_sessions) == before

    outcome = await replay(
        settings,
        log.request(rebuild, jobs=jobs),
        swap=True,
        live_schema=live_schema,
        check=check,
        allow_undecodable=True,
    )
    assert outcome.resumed
    assert outcome.swap is not None
    if check:  # this run read nothing new: only the check's pass over every offset saw the record
        assert "swapping without 1 records that do not decode" in outcome.notes


async def test_swapping_agents_and_knowledge_keeps_the_command_results_the_campaigns_projection_wrote(
    settings: Settings, live: Live
) -> None:
    log, live_schema, live_sessions = live
    call_id = unique("refused-call")
    rejected = example_record(
        dialer.DialerRequestRejected,
        1,
        command_type="voice.dialer.v1.PlaceCall",
        call_id=call_id,
        campaign_id=None,
        reason="outside_window",
        seq=1,
    )
    async with live_sessions() as session, session.begin():  # what the live campaigns projection writes
        await CampaignProjection().apply_batch(session, [rejected])
        # A lost agent outcome, which the rebuilt rows restore.
        lost = await session.execute(_DELETE_ONE_AGENT_RESULT)
    lost_id = lost.scalar_one()
    query = "SELECT count(*) FROM command_result WHERE correlation_id = :c"
    rebuild = _rebuild()
    topics = {k: v for k, v in log.topics.items() if k != "calls"}
    request = ReplayRequest(schema=rebuild, projections=("agents", "knowledge"), topics=topics)

    outcome = await replay(settings, request, swap=True, live_schema=live_schema)

    assert outcome.swap is not None
    assert await scalar(live_sessions, query, c=call_id) == 1, "the swap dropped the campaigns' outcome"
    assert await scalar(live_sessions, query, c=lost_id) == 1, "the rebuilt outcomes were not added"
    assert "command_result" not in outcome.swap.tables
    assert outcome.swap.merged == {"command_result": ("campaigns",)}
    async with schema_sessions(settings, outcome.swap.replaced_schema) as replaced:
        assert await scalar(replaced, "SELECT count(*) FROM agent") == 3  # the live tables, kept aside
