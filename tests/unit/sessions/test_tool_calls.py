"""ToolCalls bookkeeping: cancellation, completion racing cancellation, repeated ids, odd answers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types
from google.genai.live import AsyncSession
from http_endpoints import endpoint, replying
from session_fakes import FakeEdge, FakeGemini, FakeLive, FakeSink, eventually, target

from schemas.agents import ToolSpec
from streams.sessions.conversation import Conversation
from streams.sessions.facts import Reporter
from streams.sessions.live_config import DEFAULT_CONFIG
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tool_call import ToolCalls
from streams.sessions.tools import ToolContext, ToolResult, ToolRunner, WebhookTools

CONTEXT = ToolContext(tenant_id="t-1", agent_id="agent-1", call_id="call-1", config=DEFAULT_CONFIG)


def _tool_call(*calls: tuple[str | None, str, dict[str, Any]]) -> types.LiveServerToolCall:
    return types.LiveServerToolCall(
        function_calls=[types.FunctionCall(id=i, name=n, args=a) for i, n, a in calls]
    )


class Blocking:
    """A tool runner whose "slow" tool never finishes; "fast" answers at once."""

    def __init__(self) -> None:
        self.running = 0

    async def run(self, context: Any, call_id: str, name: str, args: dict[str, Any]) -> ToolResult:
        if name == "fast":
            return ToolResult({"ok": True})
        self.running += 1
        try:
            await asyncio.Future()
        finally:
            self.running -= 1
        raise AssertionError("unreachable")


async def _no_answer(_: types.FunctionResponse) -> None:
    pass


async def test_cancel_does_not_swallow_the_cancellation_of_its_own_caller() -> None:
    # _on_message runs ToolCalls.cancel inside the downlink task; when _pump cancels that task
    # while cancel() waits for the tool's end, that cancellation must get through.
    runner, sink = Blocking(), FakeSink()
    calls = ToolCalls(runner, Reporter(sink, "t-1", "call-1"), CONTEXT)  # type: ignore[arg-type]
    conversation = SimpleNamespace(segments=0, pending_hangup=None)
    await calls.start(_tool_call(("fc-1", "slow", {})), conversation, _no_answer)  # type: ignore[arg-type]
    await eventually(lambda: runner.running == 1)
    downlink = asyncio.create_task(calls.cancel(["fc-1"], "withdrawn by the model"))
    await asyncio.sleep(0)  # the downlink now awaits the tool task's end
    downlink.cancel()  # _pump's finally, because the caller hung up meanwhile
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(downlink, 2)


class SlowToStop(ToolRunner):
    """A tool whose cancellation takes a moment (an HTTP connection being closed, say)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.started = asyncio.Event()
        self.stopping = asyncio.Event()

    async def run(self, context: Any, tool_call_id: str, name: str, args: dict[str, Any]) -> ToolResult:
        self.started.set()
        try:
            await asyncio.Future()
        except asyncio.CancelledError:
            self.stopping.set()
            await asyncio.sleep(0.3)
            raise
        raise AssertionError("unreachable")


async def test_the_session_ends_when_the_caller_hangs_up_while_a_cancellation_is_handled() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    runner = SlowToStop()
    config = dataclasses.replace(DEFAULT_CONFIG, greeting=None)
    async with FakeEdge() as edge:
        session = CallSession(
            target(edge.url, config=config), connect_live=gemini.connect, facts=sink, tools=runner
        )
        run = asyncio.create_task(session.run())
        try:
            await eventually(lambda: bool(edge.connections))
            live.push(tool_call={"function_calls": [{"id": "fc-1", "name": "slow", "args": {}}]})
            await asyncio.wait_for(runner.started.wait(), 3)
            live.push(tool_call_cancellation={"ids": ["fc-1"]})
            await asyncio.wait_for(runner.stopping.wait(), 3)  # the downlink is inside cancel()
            await edge.stop_stream()
            outcome = await asyncio.wait_for(asyncio.shield(run), 5)  # hung for ever: cancel() ate it
            assert outcome is SessionOutcome.ENDED
        finally:
            if not run.done():
                run.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(run, 5)


@pytest.mark.parametrize("spins", range(8))
async def test_a_withdrawn_tool_is_recorded_cancelled_or_completed_never_both(spins: int) -> None:
    sink, answers = FakeSink(), []

    async def respond(response: types.FunctionResponse) -> None:
        answers.append(response)

    reporter = Reporter(sink, "t-1", "call-1")
    calls = ToolCalls(ToolRunner(None), reporter, CONTEXT)
    # The real conversation: a stand-in without hang_up_after_goodbye made every completed run
    # raise inside its task, so a completion was never answered and nobody noticed.
    conversation = Conversation("call-1", reporter)
    await calls.start(_tool_call(("fc-1", "end_call", {"reason": "bye"})), conversation, respond)
    for _ in range(spins):
        await asyncio.sleep(0)
    await calls.cancel(["fc-1"], "withdrawn by the model")
    await asyncio.sleep(0.05)
    kinds = [k for k in sink.kinds() if k in ("ToolCallCompleted", "ToolCallFailed")]
    assert len(kinds) == 1, (kinds, answers, conversation.pending_hangup)
    if kinds == ["ToolCallFailed"]:  # recorded as withdrawn: then no answer, no hang-up
        assert answers == []
        assert conversation.pending_hangup is None
    else:  # it finished first: answered once, and the hang-up it asked for is kept
        assert [(a.id, a.response) for a in answers] == [("fc-1", {"ok": True})]
        assert conversation.pending_hangup == "bye"


async def test_close_stops_every_tool_when_the_fallback_ids_collide() -> None:
    # Function calls without ids once got "fc-{segments}-{len(running)}": after one of two
    # finished, the next id was the one still running, and close() missed a tool.
    runner, sink = Blocking(), FakeSink()
    calls = ToolCalls(runner, Reporter(sink, "t-1", "call-1"), CONTEXT)  # type: ignore[arg-type]
    conversation = SimpleNamespace(segments=0, pending_hangup=None)
    await calls.start(_tool_call((None, "fast", {}), (None, "slow", {})), conversation, _no_answer)  # type: ignore[arg-type]
    await eventually(lambda: runner.running == 1 and len(calls.running) == 1)
    await calls.start(_tool_call((None, "slow", {})), conversation, _no_answer)  # type: ignore[arg-type]
    await eventually(lambda: runner.running == 2)
    ids = [r.tool_call_id for r in sink.of("ToolCallRequested")]
    await calls.close("the Live connection closed before the tool finished")
    await asyncio.sleep(0.05)
    assert runner.running == 0, "a tool kept running after its connection closed"
    assert len(set(ids)) == 3, ids


async def test_close_stops_both_tools_when_the_model_repeats_an_id() -> None:
    runner, sink = Blocking(), FakeSink()
    calls = ToolCalls(runner, Reporter(sink, "t-1", "call-1"), CONTEXT)  # type: ignore[arg-type]
    conversation = SimpleNamespace(segments=0, pending_hangup=None)
    await calls.start(_tool_call(("x", "slow", {}), ("x", "slow", {})), conversation, _no_answer)  # type: ignore[arg-type]
    await eventually(lambda: runner.running == 2)
    await calls.close("the Live connection closed before the tool finished")
    await asyncio.sleep(0.05)
    assert runner.running == 0, "a tool kept running after its connection closed"


ARGS = json.dumps({"type": "object", "properties": {"day": {"type": "string"}}})


class Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


async def test_a_deeply_nested_webhook_answer_still_answers_the_model() -> None:
    # 1.2 KB of JSON, well inside MAX_RESPONSE_BYTES; json.loads and json.dumps take it, but
    # google-genai's convert_to_dict recurses twice per level and raises RecursionError.
    body = json.dumps({"slots": json.loads("[" * 600 + "]" * 600)}).encode()
    socket = Socket()
    real = AsyncSession(api_client=genai.Client(api_key="k")._api_client, websocket=socket)  # type: ignore[arg-type]
    gemini, sink = FakeGemini(), FakeSink()
    live: FakeLive = gemini.live()

    async def send_tool_response(*, function_responses: list[types.FunctionResponse]) -> None:
        await real.send_tool_response(function_responses=function_responses)  # the SDK's own path

    live.send_tool_response = send_tool_response  # type: ignore[method-assign]
    async with endpoint(replying(200, body)) as hook, httpx.AsyncClient() as client, FakeEdge() as edge:
        tool = ToolSpec(name="book", description="", parameters_json=ARGS, webhook_url=hook.url)
        config = dataclasses.replace(DEFAULT_CONFIG, tools=(tool,), greeting=None)
        tools = ToolRunner(None, webhooks=WebhookTools(client=client, secret="s", allow_private=True))
        session = CallSession(
            target(edge.url, config=config), connect_live=gemini.connect, facts=sink, tools=tools
        )
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(edge.connections))
        live.push(tool_call={"function_calls": [{"id": "fc-1", "name": "book", "args": {"day": "mon"}}]})
        await eventually(lambda: bool(sink.of("ToolCallCompleted") or sink.of("ToolCallFailed")))
        await asyncio.sleep(0.2)
        answered = [json.loads(s) for s in socket.sent]
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)
    # The Live connection is open: the model waits for fc-1's answer, so it must get one
    # (the answer, or an error it can speak about).
    assert answered, f"no tool response was sent; recorded: {[r for r in sink.kinds() if 'Tool' in r]}"
    assert "nested more than" in sink.of("ToolCallFailed")[0].error
