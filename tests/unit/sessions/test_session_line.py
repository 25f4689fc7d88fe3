"""What the call machine decides and only the session can carry out: a hang-up (an operator's
EndCall, the maximum duration, the silence timeout), a transfer, and a silence check-in. None of
them reached the phone before: the machine recorded them, and the caller heard silence."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from session_fakes import TOKEN, FakeEdge, FakeGemini, FakeLive, FakeSink, eventually, target
from session_fakes import live_call_state as _live_state

from schemas import bridge
from streams.calls.state import CallState, CallStatus
from streams.sessions.directory import AgentDirectory
from streams.sessions.live_config import DEFAULT_CONFIG, SILENCE_CHECK_IN_PROMPT
from streams.sessions.manager import SessionManager, carry_out
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner

pytestmark = pytest.mark.asyncio


def _session(edge: FakeEdge, gemini: FakeGemini, sink: FakeSink) -> CallSession:
    config = dataclasses.replace(
        DEFAULT_CONFIG, greeting="Hello from Acme.", transfer_numbers=("+14155550123",)
    )
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


@dataclasses.dataclass(frozen=True)
class _Line:
    """A session talking to a fake edge and a fake Live connection."""

    edge: FakeEdge
    live: FakeLive
    sink: FakeSink
    session: CallSession


@contextlib.asynccontextmanager
async def _greeted_line() -> AsyncIterator[_Line]:
    """A session whose greeting the model has said; the caller's stream stops on the way out."""
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        session = _session(edge, gemini, sink)
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(live.texts))
        _greeted(live)
        yield _Line(edge, live, sink, session)
        await _finish(edge, run)


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


async def test_a_silence_check_in_asks_the_model_once_it_is_quiet() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        session = _session(edge, gemini, sink)
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(live.texts))
        live.push(server_content={"output_transcription": {"text": "Hello from Acme."}})
        session.check_in()  # during the greeting: said once the greeting is over
        await asyncio.sleep(0.1)
        assert SILENCE_CHECK_IN_PROMPT not in live.texts
        live.push(server_content={"turn_complete": True})
        await eventually(lambda: SILENCE_CHECK_IN_PROMPT in live.texts)
        assert live.texts.count(SILENCE_CHECK_IN_PROMPT) == 1
        await _finish(edge, run)


async def test_the_manager_passes_the_states_decisions_to_the_session() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.seen: list[object] = []

        def close_line(self, directive: object) -> None:
            self.seen.append(directive)

        def check_in(self) -> None:
            self.seen.append("check_in")

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
    ]:
        recorder = Recorder()
        carry_out(state, recorder, set())  # type: ignore[arg-type]
        assert recorder.seen == [expected]


async def test_a_check_in_is_passed_on_once_per_silence_whatever_the_agent_says_meanwhile() -> None:
    # The agent's own check-in moves the call's activity time on while silence_checked_in stays
    # set: keyed on that time, the model was asked to check in again after every answer, and
    # the silence hang-up never came.
    base, recorder, checked_in = _state(), [], set()  # type: ignore[var-annotated]

    class Recorder:
        def close_line(self, directive: object) -> None:
            recorder.append(directive)

        def check_in(self) -> None:
            recorder.append("check_in")

    session = Recorder()
    at = base.last_activity_at
    for seconds in (0, 1, 4, 5, 8):  # the check-in, then agent speech moving the activity time on
        state = dataclasses.replace(
            base, silence_checked_in=True, last_activity_at=at + timedelta(seconds=seconds)
        )
        carry_out(state, session, checked_in)  # type: ignore[arg-type]
    assert recorder == ["check_in"]
    carry_out(dataclasses.replace(base, silence_checked_in=False), session, checked_in)  # type: ignore[arg-type]
    carry_out(dataclasses.replace(base, silence_checked_in=True), session, checked_in)  # type: ignore[arg-type]
    assert recorder == ["check_in", "check_in"]  # the caller spoke: the next silence gets its own


def _state() -> CallState:
    return _live_state("ws://edge/bridge/call-1", "token-1")


async def test_end_call_hangs_up_even_when_the_model_says_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hang-up waited for the model's next turnComplete; a model that answered the tool with
    # silence left the call open until the caller hung up.
    monkeypatch.setattr("streams.sessions.session.END_CALL_GRACE_S", 0.2)
    async with _greeted_line() as line:
        edge, live, sink = line.edge, line.live, line.sink
        live.push(
            tool_call={"function_calls": [{"id": "fc-1", "name": "end_call", "args": {"reason": "done"}}]}
        )
        await eventually(lambda: "HangUp" in edge.kinds(), within=12.0)  # after the hang-up mark's wait
    assert [(r.requested_by, r.reason) for r in sink.of("HangUpRequested")] == [("agent", "done")]
    assert [m.reason for m in edge.received if isinstance(m, bridge.HangUp)] == ["agent_hung_up"]


async def test_a_call_first_seen_ending_gets_its_hang_up_without_a_greeting() -> None:
    # A worker that takes a call over while it is being hung up started a session that greeted
    # the caller and never sent the hang-up: only a later state of the call passed it on.
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with FakeEdge() as edge:
        manager = SessionManager(
            directory=AgentDirectory(), connect_live=gemini.connect, facts=sink, tools=ToolRunner(None),
            worker_id="w2", config_wait_s=0,
        )  # fmt: skip
        state = dataclasses.replace(
            _live_state(edge.url, TOKEN), status=CallStatus.ENDING, end_reason="max_duration"
        )
        manager.ensure(state)
        await eventually(lambda: "HangUp" in edge.kinds())
        assert [m.reason for m in edge.received if isinstance(m, bridge.HangUp)] == ["max_duration"]
        assert not any("Greet" in text for text in live.texts)
        await edge.stop_stream()
        await manager.stop_all()


async def test_a_hang_up_asked_before_the_bridge_opens_still_goes_out() -> None:
    # It was sent into a bridge not yet open and dropped, and then blocked every later hang-up.
    gemini, sink = FakeGemini(), FakeSink()
    gemini.live()
    async with FakeEdge() as edge:
        session = _session(edge, gemini, sink)
        session.close_line(bridge.HangUp(reason="operator"))
        run = asyncio.create_task(session.run())
        await eventually(lambda: "HangUp" in edge.kinds())
        await _finish(edge, run)


GOODBYE_AUDIO = {"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x02" * 480}}]}}


async def _transfer_asked(live: FakeLive, sink: FakeSink, session: CallSession) -> None:
    """The model calls transfer_call; the call machine's TRANSFERRING state reaches the session
    (as the manager passes it on) before the model has answered the tool's response."""
    live.push(
        tool_call={
            "function_calls": [{"id": "fc-1", "name": "transfer_call", "args": {"target": "+14155550123"}}]
        }
    )
    await eventually(lambda: bool(live.tool_responses) and bool(sink.of("TransferRequested")))
    session.close_line(bridge.Transfer(target=sink.of("TransferRequested")[0].target))


def _said_goodbye(live: FakeLive, text: str = "I am transferring you now.") -> None:
    live.push(server_content={"output_transcription": {"text": text}})
    live.push(server_content=GOODBYE_AUDIO)
    live.push(server_content={"turn_complete": True})


def _goodbye_then(edge: FakeEdge, kind: str = "Transfer") -> tuple[int, int]:
    """Where the goodbye's last audio and the transfer (or hang-up) are in what the edge received."""
    kinds = edge.kinds()
    audio = [
        i
        for i, m in enumerate(edge.received)
        if isinstance(m, bridge.AgentAudio) and m.pcm[:2] == b"\x00\x02"
    ]
    return (audio[-1] if audio else -1), (kinds.index(kind) if kind in kinds else -1)


async def test_a_transfer_the_model_asked_for_waits_until_its_goodbye_has_played() -> None:
    # The transfer went out as soon as the tool was answered, before the model had begun its
    # reply: the caller was moved without hearing "I am transferring you now".
    async with _greeted_line() as line:
        edge, live, sink, session = line.edge, line.live, line.sink, line.session
        await eventually(lambda: "PlayMark" in edge.kinds())
        await _transfer_asked(live, sink, session)
        await asyncio.sleep(0.3)  # the model takes a moment to answer the tool's response
        edge.hold_marks = True  # the phone is still playing the goodbye
        _said_goodbye(live)
        await eventually(lambda: edge.kinds().count("PlayMark") >= 2)  # the goodbye's own mark
        await asyncio.sleep(0.2)
        goodbye, transfer = _goodbye_then(edge)
        assert transfer == -1, f"the transfer went out at frame {transfer}, the goodbye at {goodbye}"
        await edge.play_marks()  # the caller has heard it
        await eventually(lambda: "Transfer" in edge.kinds())
    goodbye, transfer = _goodbye_then(edge)
    assert 0 <= goodbye < transfer
    assert [m.target for m in edge.received if isinstance(m, bridge.Transfer)] == ["+14155550123"]


async def test_the_turn_that_called_transfer_call_is_not_taken_for_its_goodbye() -> None:
    # Some Live models end the turn that called the tool ("let me put you through") with a
    # turnComplete of its own, and answer the tool's response in a new turn.
    async with _greeted_line() as line:
        edge, live, sink, session = line.edge, line.live, line.sink, line.session
        live.push(server_content={"output_transcription": {"text": "Let me put you through."}})
        live.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x01" * 480}}]}})
        await _transfer_asked(live, sink, session)
        live.push(server_content={"turn_complete": True})
        await eventually(lambda: edge.kinds().count("PlayMark") >= 2)
        await asyncio.sleep(0.3)
        goodbye, transfer = _goodbye_then(edge)
        assert transfer == -1, f"the transfer went out at frame {transfer}, before any goodbye"
        _said_goodbye(live)
        await eventually(lambda: "Transfer" in edge.kinds())
    goodbye, transfer = _goodbye_then(edge)
    assert 0 <= goodbye < transfer


async def test_a_transfer_goes_out_when_the_model_says_no_goodbye(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.sessions.session.END_CALL_GRACE_S", 0.5)
    async with _greeted_line() as line:
        edge, live, sink, session = line.edge, line.live, line.sink, line.session
        loop = asyncio.get_running_loop()
        await _transfer_asked(live, sink, session)
        asked = loop.time()
        await eventually(lambda: "Transfer" in edge.kinds(), within=5.0)
        waited = loop.time() - asked
    assert waited >= 0.5, f"transferred after {waited:.2f} s: the model had no time to say goodbye"
    assert [m.target for m in edge.received if isinstance(m, bridge.Transfer)] == ["+14155550123"]


GOODBYE_ID = "call-1:u2"
"""The utterance after the greeting (``target``'s call)."""


async def _end_call_answered(live: FakeLive) -> None:
    live.push(tool_call={"function_calls": [{"id": "fc-1", "name": "end_call", "args": {"reason": "done"}}]})
    await eventually(lambda: bool(live.tool_responses))


async def test_end_call_hangs_up_after_a_goodbye_said_in_a_turn_of_its_own() -> None:
    # Some Live models end the turn that called end_call with a turnComplete of its own, then
    # say goodbye in a new turn: the hang-up went out at that first turnComplete, and the
    # caller never heard the goodbye.
    async with _greeted_line() as line:
        edge, live, sink = line.edge, line.live, line.sink
        await eventually(lambda: "PlayMark" in edge.kinds())
        await _end_call_answered(live)
        live.push(server_content={"turn_complete": True})  # the calling turn ends, nothing said
        await asyncio.sleep(0.3)  # the model takes a moment to answer the tool's response
        assert "HangUp" not in edge.kinds(), "hung up before the model had said goodbye"
        edge.hold_marks = True  # the phone is still playing the goodbye
        _said_goodbye(live, "Thank you for calling, goodbye.")
        await eventually(lambda: GOODBYE_ID in _marks(edge))
        await asyncio.sleep(0.2)
        assert "HangUp" not in edge.kinds(), "hung up while the phone was still playing the goodbye"
        await edge.play_marks()  # the caller has heard it
        await eventually(lambda: "HangUp" in edge.kinds())
    goodbye, hang_up = _goodbye_then(edge, "HangUp")
    assert 0 <= goodbye < _marks(edge)[GOODBYE_ID] < hang_up
    assert [(r.requested_by, r.reason) for r in sink.of("HangUpRequested")] == [("agent", "done")]


async def test_after_end_call_a_goodbye_that_never_ends_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.sessions.session.END_CALL_GRACE_S", 0.2)
    monkeypatch.setattr("streams.sessions.session.CHECK_IN_WAIT_S", 0.3)
    async with _greeted_line() as line:
        edge, live, sink = line.edge, line.live, line.sink
        await _end_call_answered(live)
        live.push(server_content={"output_transcription": {"text": "Goodbye and"}})
        live.push(server_content=GOODBYE_AUDIO)  # ...and no turnComplete, ever
        await eventually(lambda: "HangUp" in edge.kinds(), within=12.0)  # after the mark's wait
    assert GOODBYE_ID in _marks(edge)  # the utterance was ended before the hang-up
    assert GOODBYE_ID in [f.utterance_id for f in sink.of("AgentSpeechFinished")]
    assert [(r.requested_by, r.reason) for r in sink.of("HangUpRequested")] == [("agent", "done")]


def _marks(edge: FakeEdge) -> dict[str, int]:
    """The marks the edge was asked to play, and where each is in what it received."""
    return {m.name: i for i, m in enumerate(edge.received) if isinstance(m, bridge.PlayMark)}


async def test_end_call_after_a_goodbye_in_the_same_turn_hangs_up_without_waiting_out_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The model says goodbye, then calls end_call in the same turn, and answers the tool's
    # response with silence: the hang-up waited the whole grace for a second goodbye (8 s of dead
    # air after "goodbye"). Now it waits only for a follow-up turn to start.
    monkeypatch.setattr("streams.sessions.session.END_CALL_GRACE_S", 60.0)
    monkeypatch.setattr("streams.sessions.session.GOODBYE_FOLLOW_UP_S", 0.3)
    async with _greeted_line() as line:
        edge, live, sink = line.edge, line.live, line.sink
        await eventually(lambda: "PlayMark" in edge.kinds())
        live.push(server_content={"output_transcription": {"text": "Thank you for calling, goodbye."}})
        live.push(server_content=GOODBYE_AUDIO)
        await _end_call_answered(live)
        live.push(server_content={"turn_complete": True})  # the same turn ends; nothing more is said
        await eventually(lambda: "HangUp" in edge.kinds(), within=15.0)
    goodbye, hang_up = _goodbye_then(edge, "HangUp")
    assert 0 <= goodbye < _marks(edge)[GOODBYE_ID] < hang_up
    assert [(r.requested_by, r.reason) for r in sink.of("HangUpRequested")] == [("agent", "done")]


async def test_a_turn_that_follows_the_tool_quickly_is_still_taken_for_the_goodbye(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The follow-up window is for a model that has more to say after the tool's response.
    monkeypatch.setattr("streams.sessions.session.GOODBYE_FOLLOW_UP_S", 1.0)
    async with _greeted_line() as line:
        edge, live = line.edge, line.live
        await eventually(lambda: "PlayMark" in edge.kinds())
        live.push(server_content={"output_transcription": {"text": "One moment."}})
        live.push(server_content=GOODBYE_AUDIO)
        await _end_call_answered(live)
        live.push(server_content={"turn_complete": True})
        await asyncio.sleep(0.2)  # within the follow-up window
        live.push(server_content={"output_transcription": {"text": "Goodbye."}})
        live.push(server_content={"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x03" * 480}}]}})
        live.push(server_content={"turn_complete": True})
        await eventually(lambda: "HangUp" in edge.kinds(), within=15.0)
    last_words = max(
        i
        for i, m in enumerate(edge.received)
        if isinstance(m, bridge.AgentAudio) and m.pcm[:2] == b"\x00\x03"
    )
    assert last_words < edge.kinds().index("HangUp")


async def test_a_goodbye_whose_turn_ends_before_end_call_is_answered_hangs_up_without_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The calling turn's turnComplete follows its toolCall at once, so it reaches the session
    # while end_call is still being answered: that turn's goodbye was not taken for the goodbye,
    # and the caller sat through the whole grace (8 s of dead air after "goodbye").
    monkeypatch.setattr("streams.sessions.session.END_CALL_GRACE_S", 60.0)
    monkeypatch.setattr("streams.sessions.session.GOODBYE_FOLLOW_UP_S", 0.3)
    async with _greeted_line() as line:
        edge, live = line.edge, line.live
        await eventually(lambda: "PlayMark" in edge.kinds())
        live.push(server_content={"output_transcription": {"text": "Thank you for calling, goodbye."}})
        live.push(server_content=GOODBYE_AUDIO)
        end_call = {"id": "fc-1", "name": "end_call", "args": {"reason": "done"}}
        live.push(tool_call={"function_calls": [end_call]})
        live.push(server_content={"turn_complete": True})  # before the tool's answer
        await eventually(lambda: "HangUp" in edge.kinds(), within=15.0)
    goodbye, hang_up = _goodbye_then(edge, "HangUp")
    assert 0 <= goodbye < _marks(edge)[GOODBYE_ID] < hang_up
