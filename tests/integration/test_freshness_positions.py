"""After a restore that is shorter than what the read models applied, the projections that were past
it forget their aggregate positions: the services number their next events after the restored log,
and a kept position made a projection skip those as already applied (campaign progress froze)."""

from __future__ import annotations

import psycopg
import pytest

from infra.settings import Settings
from tests.support.databases import fresh_database
from voiceagent.freshness import _clamp_checkpoints, _plain_url, _reset_checkpoints

pytestmark = pytest.mark.integration


@pytest.fixture
async def fresh(settings: Settings) -> Settings:
    """Settings naming a database of its own, migrated (the functions work on the default schema)."""
    return settings.model_copy(update={"database": await fresh_database(settings)})


def _seed(settings: Settings) -> None:
    with psycopg.connect(_plain_url(settings)) as conn:
        conn.execute(
            "INSERT INTO projection_checkpoint (projection, topic, partition, next_offset) VALUES"
            " ('campaigns', 'voice.dialer.events.v1', 0, 10), ('agents', 'voice.agents.events.v1', 0, 3)"
        )
        conn.execute(
            "INSERT INTO aggregate_position (projection, aggregate_id, last_seq) VALUES"
            " ('campaigns', 'dialer:agt_1', 10), ('agents', 'agt_1', 3)"
        )


def _table(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(_plain_url(settings)) as conn:
        return conn.execute(sql).fetchall()


async def test_a_projection_past_the_restored_end_forgets_its_positions(fresh: Settings) -> None:
    _seed(fresh)
    behind = _clamp_checkpoints(fresh, {("voice.dialer.events.v1", 0): 7, ("voice.agents.events.v1", 0): 3})
    assert behind == {"campaigns"}
    assert _table(fresh, "SELECT projection, next_offset FROM projection_checkpoint ORDER BY 1") == [
        ("agents", 3),
        ("campaigns", 7),
    ]
    assert _table(fresh, "SELECT projection FROM aggregate_position") == [("agents",)]


async def test_an_empty_log_with_no_archive_forgets_every_position(fresh: Settings) -> None:
    _seed(fresh)
    _reset_checkpoints(fresh)
    assert _table(fresh, "SELECT count(*) FROM projection_checkpoint") == [(0,)]
    assert _table(fresh, "SELECT count(*) FROM aggregate_position") == [(0,)]
