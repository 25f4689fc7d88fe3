"""`call simulate` of a call that fails (CallFailed): printed as a failure, exit code 3."""

from __future__ import annotations

import io
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from schemas.calls import CallEnded, CallFailed
from schemas.ids import CallId, CorrelationId, EventId, TenantId
from tests.support.dev_addresses import dev_addresses
from voiceagent import calls, cli
from voiceagent.caller import Heard
from voiceagent.simulate import Outcome, outcome_of

RED, GREEN = "\x1b[31m", "\x1b[32m"


def _envelope(seq: int) -> dict[str, object]:
    return {
        "tenant_id": TenantId("t1"),
        "call_id": CallId("c1"),
        "seq": seq,
        "event_id": EventId(f"e{seq}"),
        "occurred_at": datetime(2026, 11, 27, 10, 0, seq, tzinfo=UTC),
        "correlation_id": CorrelationId(f"k{seq}"),
    }


def test_a_call_that_ends_in_call_failed_is_a_failed_outcome() -> None:
    failed = CallFailed(**_envelope(2), reason="transfer_failed", detail="busy")  # type: ignore[arg-type]
    outcome = outcome_of("c1", [failed], Heard(), None)
    assert outcome.failed
    assert outcome.end == "CallFailed (transfer_failed)"


def test_a_call_that_ends_in_call_ended_is_no_failure() -> None:
    ended = CallEnded(**_envelope(2), reason="completed", ended_by="caller")  # type: ignore[arg-type]
    assert not outcome_of("c1", [ended], Heard(), None).failed


def _simulate(monkeypatch: pytest.MonkeyPatch, data_dir: Path, outcome: Outcome) -> tuple[object, str]:
    """Run `call simulate` to `outcome` (no platform involved); its exit code and coloured output."""

    async def placed(*args: object, **kwargs: object) -> Outcome:
        return outcome

    shown = io.StringIO()
    monkeypatch.setattr(calls, "console", Console(file=shown, force_terminal=True, color_system="standard"))
    monkeypatch.setattr(calls, "simulate_call", placed)
    dev_addresses().write(data_dir)
    monkeypatch.setenv("VOICE_DATA_DIR", str(data_dir))
    monkeypatch.setattr(sys, "argv", ["voiceagent", "call", "simulate", "--agent", "demo"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return exited.value.code, shown.getvalue()


def _text(shown: str) -> str:
    """What was printed, without its colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", shown)


def test_a_failed_call_is_red_and_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = Outcome("c1", "CallFailed (transfer_failed)", Heard(), failed=True)
    code, shown = _simulate(monkeypatch, tmp_path, outcome)
    assert code == 3
    assert RED in shown
    assert GREEN not in shown
    assert "call c1 failed: CallFailed (transfer_failed)" in _text(shown)


def test_an_ended_call_is_green_and_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, shown = _simulate(monkeypatch, tmp_path, Outcome("c1", "CallEnded (completed)", Heard()))
    assert code in (0, None)
    assert GREEN in shown
    assert "call c1 finished: CallEnded (completed)" in _text(shown)
