"""What the call machine decides and only the session can carry out: a hang-up (an operator's
EndCall, the maximum duration, the silence timeout), a transfer, and a silence check-in. None of
them reached the phone before: the machine recorded them, and the caller heard silence."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest
from session_fakes import FakeEdge, FakeGemini, FakeLive, FakeSink, eventually, target
from test_session_manager import _live_call as _live_state

from schemas import bridge
from streams.calls.state import CallState, CallStatus
from streams.sessions.live_config import DEFAULT_CONFIG, SILENCE_CHECK_IN_PROMPT
from streams.sessions.manager import carry_out
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner

pytestmark = pytest.mark.asyncio


def _session(edge: FakeEdge, gemini: FakeGemini, sink: FakeSink) -> CallSession:
    config = dataclasses.replace(DEFAULT_CONFIG, greeting="Hello from Acme.")
    return CallSession(
        target(edge.url, config=config), connect_live=gemini.connect, facts=sink, tools=ToolRunner(None)
    )


def _greeted(live: FakeLive) -> None:
    live.push(server_content={"output_transcription": {"text": "Hello from Acme."}})
    live.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x01" * 480}}]}})
    live.push(server_content={"turn_complete": True})


async def _finish(edge: FakeEdge, run: asyncio.Task[SessionOutcome]) -> SessionOutcome:
    await edge.stop_stream()
    return await asyncio.wait_for(run, 5)


async def test_a_hang_up_decided_by_the_call_machine_is_sent_to_the_edge_once() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        session = _session(edge, gemini, sink)
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(live.texts))
        _greeted(live)
        session.close_line(bridge.HangUp(reason="max_duration"))
        session.close_line(bridge.HangUp(reason="max_duration"))  # every later state says it again
        await eventually(lambda: "HangUp" in edge.kinds())
        outcome = await _finish(edge, run)
    assert outcome is SessionOutcome.ENDED
    assert [m.reason for m in edge.received if isinstance(m, bridge.HangUp)] == ["max_duration"]
    assert sink.of("HangUpRequested") == []  # the machine recorded it already


async def test_a_transfer_waits_for_the_models_turn_then_goes_to_the_edge() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        session = _session(edge, gemini, sink)
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(live.texts))
        live.push(server_content={"output_transcription": {"text": "Transferring you now."}})
        live.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x01" * 480}}]}})
        await eventually(lambda: "AgentAudio" in edge.kinds())
        session.close_line(bridge.Transfer(target="+14155550123"))
        await asyncio.sleep(0.2)
        assert "Transfer" not in edge.kinds()  # "transferring you" is still being said
        live.push(server_content={"turn_complete": True})
        await eventually(lambda: "Transfer" in edge.kinds())
        await _finish(edge, run)
    assert [m.target for m in edge.received if isinstance(m, bridge.Transfer)] == ["+14155550123"]


async def test_a_silence_check_in_asks_the_model_once_per_silence() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    silence = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    async with FakeEdge() as edge:
        session = _session(edge, gemini, sink)
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(live.texts))
        _greeted(live)
        await eventually(lambda: session._conversation.quiet)
        session.check_in(silence)
        session.check_in(silence)
        await eventually(lambda: SILENCE_CHECK_IN_PROMPT in live.texts)
        _greeted(live)  # the model's check-in
        await eventually(lambda: session._conversation.quiet)
        session.check_in(silence)  # the same silence: no second prompt
        await asyncio.sleep(0.1)
        assert live.texts.count(SILENCE_CHECK_IN_PROMPT) == 1
        await _finish(edge, run)


async def test_the_manager_passes_the_states_decisions_to_the_session() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.seen: list[object] = []

        def close_line(self, directive: object) -> None:
            self.seen.append(directive)

        def check_in(self, silence_started: object) -> None:
            self.seen.append(("check_in", silence_started))

    base = _state()
    for state, expected in [
        (
            dataclasses.replace(base, status=CallStatus.ENDING, end_reason="operator"),
            bridge.HangUp(reason="operator"),
        ),
        (
            dataclasses.replace(base, status=CallStatus.TRANSFERRING, transfer_target="+14155550123"),
            bridge.Transfer(target="+14155550123"),
        ),
        (dataclasses.replace(base, silence_checked_in=True), ("check_in", base.last_activity_at)),
    ]:
        recorder = Recorder()
        carry_out(state, recorder)  # type: ignore[arg-type]
        assert recorder.seen == [expected]
    recorder = Recorder()
    carry_out(base, recorder)  # type: ignore[arg-type]
    assert recorder.seen == []


def _state() -> CallState:
    return _live_state("ws://edge/bridge/call-1", "token-1")


async def test_end_call_hangs_up_even_when_the_model_says_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hang-up waited for the model's next turnComplete; a model that answered the tool with
    # silence left the call open until the caller hung up.
    monkeypatch.setattr("streams.sessions.session.END_CALL_GRACE_S", 0.2)
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        session = _session(edge, gemini, sink)
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(live.texts))
        _greeted(live)
        live.push(
            tool_call={"function_calls": [{"id": "fc-1", "name": "end_call", "args": {"reason": "done"}}]}
        )
        await eventually(lambda: "HangUp" in edge.kinds(), within=12.0)  # after the hang-up mark's wait
        await _finish(edge, run)
    assert [(r.requested_by, r.reason) for r in sink.of("HangUpRequested")] == [("agent", "done")]
    assert [m.reason for m in edge.received if isinstance(m, bridge.HangUp)] == ["agent_hung_up"]
