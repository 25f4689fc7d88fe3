"""A Live setup that never completes is a failed connection (google-genai's connect waits for
setupComplete for ever): retried, and after max_reconnects the call ends with the goodbye."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import google.genai.live as live_mod
import pytest
from google import genai
from google.genai import types
from session_fakes import FakeEdge, FakeGemini, FakeLive, FakeSink, eventually, target
from websockets.asyncio.server import ServerConnection, serve

from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner


@pytest.mark.asyncio
async def test_a_setup_that_hangs_is_a_failed_connection_and_the_next_one_is_tried() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    second = gemini.live()
    attempts: list[float] = []

    @contextlib.asynccontextmanager
    async def connect(model: str, config: dict[str, Any]) -> AsyncIterator[FakeLive]:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) == 1:
            await asyncio.Event().wait()  # no setupComplete, ever
        async with gemini.connect(model, config) as session:
            yield session

    async with FakeEdge() as edge:
        session = CallSession(
            target(edge.url), connect_live=connect, facts=sink, tools=ToolRunner(None), setup_timeout_s=0.3
        )
        run = asyncio.create_task(session.run())
        await eventually(lambda: gemini.started == [second], within=5)
        assert 0.3 <= attempts[1] - attempts[0] < 1.5
        [closed] = sink.of("GeminiSessionClosed")
        assert (closed.reason, closed.close_code) == ("error", None)
        assert sink.of("HangUpRequested") == []
        await edge.stop_stream()
        await asyncio.wait_for(run, 5)


@pytest.mark.asyncio
async def test_a_live_server_that_never_answers_setup_ends_the_call_after_the_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Through google-genai itself: the session hung in connect(), with nothing recorded.
    setups: list[str | bytes] = []

    async def never_answers(ws: ServerConnection) -> None:
        setups.append(await ws.recv())
        await ws.wait_closed()

    original = live_mod.ws_connect  # type: ignore[attr-defined]

    def plain(uri: str, **kwargs: Any) -> Any:  # PROTOCOLS.md A2: a plain ws:// stand-in
        kwargs.pop("ssl", None)
        return original(uri.replace("wss://", "ws://", 1), **kwargs)

    monkeypatch.setattr(live_mod, "ws_connect", plain)
    async with serve(never_answers, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = genai.Client(api_key="test", http_options={"base_url": f"http://127.0.0.1:{port}"})

        def connect(model: str, config: dict[str, Any]) -> Any:
            return client.aio.live.connect(model=model, config=types.LiveConnectConfig.model_validate(config))

        sink = FakeSink()
        async with FakeEdge() as edge:
            session = CallSession(
                target(edge.url),
                connect_live=connect,
                facts=sink,
                tools=ToolRunner(None),
                setup_timeout_s=0.3,
            )
            outcome = await asyncio.wait_for(session.run(), 20)
        assert outcome is SessionOutcome.GAVE_UP
        assert len(setups) == 4  # the first attempt and max_reconnects (3) more
        assert [r.reason for r in sink.of("GeminiSessionClosed")] == ["error"] * 4
        assert [(r.requested_by, r.reason) for r in sink.of("HangUpRequested")] == [("system", "failed")]
