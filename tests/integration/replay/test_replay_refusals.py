"""Bad input to `voiceagent replay`: unknown projections, a schema in use, an empty time range."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from infra.settings import Settings
from projections.database import make_schema_engine
from projections.rebuild import prepare_schema
from tests.integration.readside.call_stream import unique
from tests.integration.readside.conftest import migrated_schema
from tests.integration.replay.replay_support import schema_exists
from voiceagent.cli import app

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
        "VOICE_DATABASE__URL": settings.database.url or "",
    }
    result = CliRunner().invoke(app, ["replay", *args], env=env)
    return result.exit_code, " ".join(result.output.replace("│", " ").split())  # rich boxes wrap


async def _started_rebuild(settings: Settings, schema: str, projections: tuple[str, ...]) -> None:
    engine = make_schema_engine(settings.database)
    try:
        await prepare_schema(settings, engine, schema, projections, None)
    finally:
        await engine.dispose()


def test_replay_refuses_unknown_projection_names_and_lists_the_valid_ones(settings: Settings) -> None:
    code, output = _cli(settings, "calls", "billing")
    assert code == 2
    assert "unknown projection(s): billing" in output
    assert "valid: agents, knowledge, calls," in output
    assert ", all" in output


def test_replay_refuses_an_existing_schema_that_no_replay_started(settings: Settings) -> None:
    schema = asyncio.run(migrated_schema(settings))
    code, output = _cli(settings, "calls", "--into-schema", schema)
    assert code == 1
    assert f"schema {schema} already exists" in output
    assert "choose another --into-schema" in output


def test_replay_refuses_to_resume_a_rebuild_of_other_projections(settings: Settings) -> None:
    schema = unique("rebuild").replace("-", "_")
    asyncio.run(_started_rebuild(settings, schema, ("agents",)))
    code, output = _cli(settings, "calls", "--into-schema", schema)
    assert code == 1
    assert f"schema {schema} is a rebuild of agents, not of calls" in output


def test_replay_of_a_time_range_with_no_events_says_so_and_leaves_no_schema(settings: Settings) -> None:
    schema = unique("rebuild").replace("-", "_")
    code, output = _cli(settings, "calls", "--since", "2100-01-01T00:00:00", "--into-schema", schema)
    assert code == 1
    assert "no events at or after 2100-01-01T00:00:00+00:00 for calls; nothing replayed" in output
    assert not schema_exists(settings, schema)


def test_replay_refuses_to_swap_a_partial_replay(settings: Settings) -> None:
    code, output = _cli(settings, "calls", "--since", "2026-01-01", "--swap", "--into-schema", "rebuild_x")
    assert code == 1
    assert "--swap needs a full replay" in output
