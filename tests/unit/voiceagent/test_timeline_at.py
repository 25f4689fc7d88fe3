"""`call timeline --at`: naive means UTC, an offset is honoured, a bad value is a usage error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from infra.settings import KafkaSettings
from schemas.calls import CallEnded, CallEvent, CallReceived
from schemas.ids import AgentId, CallId, CorrelationId, EventId, TenantId
from voiceagent import calls
from voiceagent.cli import app
from voiceagent.timeline import parse_instant, travel

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _envelope(seq: int, seconds: int) -> dict[str, object]:
    """The envelope fields of the call's `seq`th event, `seconds` after T0."""
    return {
        "tenant_id": TenantId("t1"),
        "call_id": CallId("c1"),
        "seq": seq,
        "event_id": EventId(f"e{seq}"),
        "occurred_at": T0 + timedelta(seconds=seconds),
        "correlation_id": CorrelationId(f"k{seq}"),
    }


EVENTS: list[CallEvent] = [
    CallReceived(
        **_envelope(1, 0),  # type: ignore[arg-type]
        direction="inbound",
        from_number="+15550001",
        to_number="+15550002",
        agent_id=AgentId("a1"),
        agent_version=1,
    ),
    CallEnded(**_envelope(2, 60), reason="completed", ended_by="caller"),  # type: ignore[arg-type]
]


def test_a_naive_instant_is_utc() -> None:
    chosen = travel(EVENTS, at=datetime(2026, 11, 27, 10, 0, 30))
    assert [e.seq for e in chosen.events] == [1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T10:00:30", T0 + timedelta(seconds=30)),
        ("2026-11-27 10:00:30", T0 + timedelta(seconds=30)),
        ("2026-11-27T10:00:30Z", T0 + timedelta(seconds=30)),
        ("2026-11-27T11:00:30+01:00", T0 + timedelta(seconds=30)),
    ],
)
def test_an_instant_parses_with_or_without_an_offset(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected


def test_a_bad_instant_says_what_a_good_one_looks_like() -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 time; try 2026-11-27T10:00:00"):
        parse_instant("yesterday")


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads EVENTS instead of a broker."""

    async def load_events(kafka: KafkaSettings, call_id: str) -> list[CallEvent]:
        return EVENTS

    monkeypatch.setenv("VOICE_KAFKA__BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setattr(calls, "load_events", load_events)


@pytest.mark.usefixtures("logged")
@pytest.mark.parametrize("at", ["2026-11-27T10:00:30", "2026-11-27T11:00:30+01:00"])
def test_the_cli_folds_the_state_at_a_naive_or_offset_instant(at: str) -> None:
    result = CliRunner().invoke(app, ["call", "timeline", "c1", "--at", at, "--json"])
    assert result.exception is None, result.output
    timeline = json.loads(result.output)
    assert [e["seq"] for e in timeline["events"]] == [1]  # the call had not ended at 10:00:30 UTC
    assert timeline["state"]["seq"] == 1


@pytest.mark.usefixtures("logged")
def test_the_cli_refuses_a_bad_instant_as_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["call", "timeline", "c1", "--at", "soon"])
    assert result.exit_code == 2
    assert "not an ISO 8601 time" in result.output
