"""`voiceagent replay` with bad arguments, refused before any schema exists, and stopped mid-check."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from infra.settings import Settings
from tests.integration.readside.call_stream import unique
from tests.integration.replay.replay_support import Log, schema_exists
from voiceagent import replay as replay_module
from voiceagent.cli import app
from voiceagent.replay import ReplayError, replay

pytestmark = pytest.mark.integration


def _invoke(settings: Settings, *args: str) -> Result:
    env = {
        "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
        "VOICE_DATABASE__URL": settings.database.url or "",
    }
    return CliRunner().invoke(app, ["replay", *args], env=env)


def test_an_invalid_into_schema_name_is_refused_before_any_schema_is_created(settings: Settings) -> None:
    schema = "Rebuild_" + unique("rp").replace("-", "_")  # upper case: make_schema_engine refuses it
    result = _invoke(settings, "calls", "--into-schema", schema, "--jobs", "1")
    assert result.exit_code in (1, 2)
    assert "invalid schema name" in result.output
    # The refusal used to come after Alembic had created and migrated the schema (and marked it).
    assert not schema_exists(settings, schema), f"a bad --into-schema left schema {schema} behind"


def test_an_into_schema_with_a_double_quote_is_a_clear_error_not_a_traceback(settings: Settings) -> None:
    schema = "rp_" + unique("q").replace("-", "_") + '"x'
    result = _invoke(settings, "calls", "--into-schema", schema, "--jobs", "1")
    # The name is written into CREATE SCHEMA "..." (infra/migrations/env.py): a quote in it was
    # a SQL syntax error escaping as a traceback, and a way to inject SQL.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (1, 2)


def test_a_batch_below_one_is_refused_up_front(settings: Settings) -> None:
    schema = unique("rpb").replace("-", "_")
    result = _invoke(settings, "calls", "--batch", "0", "--into-schema", schema, "--jobs", "1")
    assert result.exit_code == 2, result.output  # a usage error, like --jobs 0
    assert "--batch" in result.output


@pytest.mark.parametrize("jobs", [1, 2])
async def test_a_batch_of_zero_over_a_real_log_fails_before_creating_the_schema(
    settings: Settings, live: tuple[Log, str, async_sessionmaker[AsyncSession]], jobs: int
) -> None:
    """aiokafka's getmany refuses max_records=0, which used to surface after the schema was made."""
    log, _, _ = live
    rebuild = unique("rebuild").replace("-", "_")
    with pytest.raises(ReplayError, match="--batch"):
        await asyncio.wait_for(replay(settings, log.request(rebuild, max_records=0, jobs=jobs)), 120)
    assert not await asyncio.to_thread(schema_exists, settings, rebuild), f"schema {rebuild} left behind"


async def test_a_stop_during_verification_is_honoured_and_nothing_is_swapped(
    settings: Settings,
    live: tuple[Log, str, async_sessionmaker[AsyncSession]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C while the log is re-read for the check (a second full pass) stops before the swap."""
    log, live_schema, _ = live
    stop = asyncio.Event()
    original = replay_module.count_log

    async def count_log_then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        counts = await original(*args, **kwargs)
        stop.set()  # what stop_on_signals' SIGINT handler does
        return counts

    monkeypatch.setattr(replay_module, "count_log", count_log_then_ctrl_c)
    rebuild = unique("rebuild").replace("-", "_")
    outcome = await replay(settings, log.request(rebuild), swap=True, live_schema=live_schema, stop=stop)
    assert stop.is_set()
    assert outcome.swap is None, "interrupted during verification, yet swapped into the live schema"
    assert outcome.interrupted


def test_a_since_before_1970_is_refused_up_front(settings: Settings) -> None:
    """Kafka refuses a negative timestamp; that used to surface after the schema was made."""
    schema = unique("rps").replace("-", "_")
    result = _invoke(
        settings, "calls", "--since", "1960-01-01T00:00:00", "--into-schema", schema, "--jobs", "1"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert not schema_exists(settings, schema), f"{result.output!r}; schema {schema} left behind"
