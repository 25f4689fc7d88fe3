"""Tools inside a call: webhook tools off the audio path, cancellation, and configs Gemini refuses."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from google import genai
from google.genai import types
from http_endpoints import Request, endpoint, response, silent
from session_fakes import FakeEdge, FakeGemini, FakeSink, eventually, target

from schemas.agents import ToolSpec
from streams.sessions.live_config import DEFAULT_CONFIG
from streams.sessions.recovery import CONFIG_REFUSED_CODE
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner, WebhookTools

ARGS = json.dumps({"type": "object", "properties": {"day": {"type": "string"}}})
AUDIO = {"model_turn": {"parts": [{"inline_data": {"data": b"\x00\x01" * 480}}]}}


def _config(url: str, timeout_ms: int = 5000) -> Any:
    tool = ToolSpec(
        name="book", description="Book", parameters_json=ARGS, webhook_url=url, timeout_ms=timeout_ms
    )
    return dataclasses.replace(DEFAULT_CONFIG, tools=(tool,), greeting=None)


@contextlib.asynccontextmanager
async def _call(config: Any) -> AsyncIterator[tuple[Any, FakeSink, FakeEdge, asyncio.Task[SessionOutcome]]]:
    gemini, sink = FakeGemini(), FakeSink()
    live = gemini.live()
    async with httpx.AsyncClient() as client, FakeEdge() as edge:
        tools = ToolRunner(None, webhooks=WebhookTools(client=client, secret="s", allow_private=True))
        session = CallSession(
            target(edge.url, config=config), connect_live=gemini.connect, facts=sink, tools=tools
        )
        run = asyncio.create_task(session.run())
        await eventually(lambda: bool(edge.connections))
        yield live, sink, edge, run
        if not run.done():
            await edge.stop_stream()
            await asyncio.wait_for(run, 5)


def _ask(live: Any, call_id: str = "fc-1") -> None:
    live.push(tool_call={"function_calls": [{"id": call_id, "name": "book", "args": {"day": "mon"}}]})


async def test_the_agents_audio_keeps_flowing_while_a_webhook_tool_runs() -> None:
    release = asyncio.Event()

    async def slow(_: Request, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.write(response(200, b'{"booked": true}'))

    async with endpoint(slow) as hook, _call(_config(hook.url)) as (live, sink, edge, _):
        _ask(live)
        live.push(server_content=AUDIO)  # "let me check that for you", said while the tool runs
        await eventually(lambda: "AgentAudio" in edge.kinds())
        assert live.tool_responses == []
        release.set()
        await eventually(lambda: len(live.tool_responses) == 1)
    assert live.tool_responses[0].response == {"booked": True}
    (completed,) = sink.of("ToolCallCompleted")
    assert json.loads(completed.result_json) == {"booked": True}
    assert hook.requests[0].headers["x-voice-tool-call"] == "fc-1"


async def test_a_cancelled_tool_is_stopped_recorded_and_never_answered() -> None:
    async with endpoint(silent) as hook, _call(_config(hook.url)) as (live, sink, _, _):
        _ask(live)
        await eventually(lambda: bool(hook.requests))
        live.push(tool_call_cancellation={"ids": ["fc-1", "fc-unknown"]})
        await eventually(lambda: bool(sink.of("ToolCallFailed")))
        await asyncio.sleep(0.05)
        assert live.tool_responses == []
    (failed,) = sink.of("ToolCallFailed")
    assert failed.error == "cancelled: withdrawn by the model"
    assert sink.of("ToolCallCompleted") == []


async def test_a_tool_still_running_when_the_call_ends_is_recorded_as_cancelled() -> None:
    async with endpoint(silent) as hook, _call(_config(hook.url)) as (live, sink, _, _):
        _ask(live)
        await eventually(lambda: bool(hook.requests))
    (failed,) = sink.of("ToolCallFailed")
    assert failed.error.startswith("cancelled: the Live connection closed")


async def test_a_failing_webhook_is_answered_to_the_model_with_the_reason() -> None:
    async def broken(_: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(response(500, b"boom"))

    async with endpoint(broken) as hook, _call(_config(hook.url)) as (live, sink, _, _):
        _ask(live)
        await eventually(lambda: len(live.tool_responses) == 1)
    assert live.tool_responses[0].response == {"error": "book: HTTP 500: boom"}
    assert sink.of("ToolCallFailed")[0].error == "book: HTTP 500: boom"


async def test_a_tool_without_webhook_or_builtin_handler_fails_cleanly() -> None:
    config = dataclasses.replace(
        DEFAULT_CONFIG, tools=(ToolSpec(name="book", description="", parameters_json=ARGS),), greeting=None
    )
    async with _call(config) as (live, sink, _, _):
        _ask(live)
        await eventually(lambda: len(live.tool_responses) == 1)
    assert "no handler for tool 'book'" in sink.of("ToolCallFailed")[0].error


async def test_an_agent_whose_live_config_google_genai_refuses_ends_the_call_with_a_record() -> None:
    # A version published before the validator knew "$schema" is not a Gemini schema key: the
    # config fails on every connect. Retrying cannot help; the caller must not sit in silence.
    schema = json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"})
    config = dataclasses.replace(
        DEFAULT_CONFIG, tools=(ToolSpec(name="book", description="", parameters_json=schema),)
    )
    gemini, sink = FakeGemini(), FakeSink()
    gemini.live()

    @contextlib.asynccontextmanager
    async def connect(model: str, cfg: dict[str, Any]) -> AsyncIterator[Any]:
        types.LiveConnectConfig.model_validate(cfg)  # as streams/sessions/wiring.live_connector does
        async with gemini.connect(model, cfg) as session:
            yield session

    async with FakeEdge() as edge:
        session = CallSession(
            target(edge.url, config=config), connect_live=connect, facts=sink, tools=ToolRunner(None)
        )
        outcome = await asyncio.wait_for(session.run(), 10)
    assert outcome is SessionOutcome.GAVE_UP
    (closed,) = sink.of("GeminiSessionClosed")
    assert closed.close_code == CONFIG_REFUSED_CODE
    assert sink.of("HangUpRequested")


async def test_a_webhook_tool_called_without_a_required_argument_fails_before_any_request() -> None:
    schema = json.dumps({"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]})
    async with endpoint(silent) as hook:
        tool = ToolSpec(name="book", description="Book", parameters_json=schema, webhook_url=hook.url)
        config = dataclasses.replace(DEFAULT_CONFIG, tools=(tool,), greeting=None)
        async with _call(config) as (live, sink, _, _):
            live.push(tool_call={"function_calls": [{"id": "fc-1", "name": "book", "args": {}}]})
            await eventually(lambda: len(live.tool_responses) == 1)
    assert live.tool_responses[0].response == {"error": "book needs the argument(s): day"}
    assert sink.of("ToolCallFailed")[0].error == "book needs the argument(s): day"
    assert hook.requests == []


async def test_an_old_version_whose_schema_makes_google_genai_recurse_too_deep_ends_with_a_record() -> None:
    # Published before the JSON depth check: google-genai recurses through "example" on every
    # connect and raises RecursionError, which is no ModelFailure of its own.
    deep = json.loads("[" * 600 + "]" * 600)
    text = json.dumps({"type": "object", "properties": {"when": {"type": "string"}}, "example": deep})
    config = dataclasses.replace(
        DEFAULT_CONFIG, tools=(ToolSpec(name="book", description="", parameters_json=text),)
    )
    # The real client, as wiring.live_connector builds it; nothing listens on port 9.
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url="http://127.0.0.1:9"))

    def connect(model: str, cfg: dict[str, Any]) -> Any:
        return client.aio.live.connect(model=model, config=types.LiveConnectConfig.model_validate(cfg))

    sink = FakeSink()
    async with FakeEdge() as edge:
        session = CallSession(
            target(edge.url, config=config), connect_live=connect, facts=sink, tools=ToolRunner(None)
        )
        outcome = await asyncio.wait_for(session.run(), 20)
    assert outcome is SessionOutcome.GAVE_UP
    assert [c.close_code for c in sink.of("GeminiSessionClosed")] == [CONFIG_REFUSED_CODE]
