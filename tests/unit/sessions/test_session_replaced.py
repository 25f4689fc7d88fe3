"""A worker names itself on the bridge; one replaced on a call (4409), even at its first
connection, ends its session REPLACED (the manager holds off and may come back), never REFUSED,
and never hangs up a call another worker serves. Against the real edge: a stalled worker whose
4409 was dropped with its connection is refused when it reconnects, and ends there."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from session_fakes import TOKEN, FakeEdge, FakeGemini, FakeSink, eventually, live_call_state, target
from websockets.asyncio.client import connect

import edge.bridge_server as bridge_server
from schemas import bridge
from streams.sessions.bridge_link import Bridge, BridgeClosed, BridgeRefused
from streams.sessions.directory import AgentDirectory
from streams.sessions.manager import SessionManager
from streams.sessions.session import CallSession, SessionOutcome
from streams.sessions.tools import ToolRunner
from tests.support.edge_calls import bridged_call, edge_node

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


async def test_the_session_names_its_worker_on_the_bridge() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    gemini.live()
    async with FakeEdge() as edge:
        session = CallSession(
            target(edge.url), connect_live=gemini.connect, facts=sink, tools=ToolRunner(None)
        )
        run = asyncio.create_task(session.run())
        await edge.connected.wait()
        await edge.stop_stream()
        assert await asyncio.wait_for(run, 5) is SessionOutcome.ENDED
    assert edge.workers == ["w-1"]


async def test_a_worker_refused_as_replaced_at_its_first_connection_ends_replaced_quietly() -> None:
    gemini, sink = FakeGemini(), FakeSink()
    async with FakeEdge(refuse_with=bridge.CLOSE_REPLACED) as edge:
        session = CallSession(
            target(edge.url), connect_live=gemini.connect, facts=sink, tools=ToolRunner(None)
        )
        outcome = await asyncio.wait_for(session.run(), 5)
    assert outcome is SessionOutcome.REPLACED  # not REFUSED: the token is good, the call may come back
    assert edge.workers == ["w-1"]  # final at once: no reconnecting
    assert gemini.configs == []  # no Live session for a call another worker serves
    assert sink.of("HangUpRequested") == []


async def test_a_bridge_refused_as_replaced_is_not_a_refused_token() -> None:
    async with FakeEdge(refuse_with=bridge.CLOSE_REPLACED) as edge:
        with pytest.raises(BridgeClosed) as closed:
            await Bridge(edge.url, TOKEN, worker_id="w-1").open()
    assert not isinstance(closed.value, BridgeRefused)
    assert closed.value.final
    assert closed.value.code == bridge.CLOSE_REPLACED


async def test_the_manager_comes_back_to_a_call_it_was_refused_as_replaced() -> None:
    gemini = FakeGemini()
    gemini.live()
    manager = SessionManager(
        directory=AgentDirectory(),
        connect_live=gemini.connect,
        facts=FakeSink(),
        tools=ToolRunner(None),
        worker_id="w-1",
        config_wait_s=0,
        replaced_hold_s=0,
        prewarm=False,
    )
    async with FakeEdge(refuse_with=bridge.CLOSE_REPLACED) as edge:
        state = live_call_state(edge.url, at=NOW)
        manager.ensure(state)
        await eventually(lambda: len(edge.workers) == 1)
        await eventually(lambda: not manager.active)

        edge.refuse_with = None  # the worker that had the call left; the call came back here
        manager.ensure(state)

        await edge.connected.wait()
        await edge.stop_stream()
        await eventually(lambda: not manager.active)
    assert edge.workers == ["w-1", "w-1"]


async def test_a_stalled_worker_reconnecting_to_the_real_edge_is_refused_and_ends_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bridge_server, "_REPLACED_CLOSE_TIMEOUT_S", 0.3)
    async with bridged_call(edge_node(agent_wait_s=0.0)) as live:
        node, call, token, url = live.node, live.call, live.token, live.url
        stalled = Bridge(url, token, worker_id="w-old", backoff_s=0.01)
        try:
            await stalled.open()
            link = stalled._link
            assert link is not None
            link.connection.transport.pause_reading()  # a GC pause, a blocked loop: it reads nothing
            headers = {bridge.TOKEN_HEADER: token, bridge.WORKER_HEADER: "w-new"}
            async with connect(url, additional_headers=headers) as new:
                assert "hello" in str(await new.recv())
                serving = call.worker
                # Its 4409 never reaches it: the connection goes before it reads again (as when the
                # edge drops it after the deadline with the 4409 still queued behind a full socket).
                await asyncio.sleep(0.1)
                link.connection.transport.abort()

                with pytest.raises(BridgeClosed) as ended:
                    await asyncio.wait_for(stalled.receive(), 3.0)  # reconnects, and is refused

                assert ended.value.code == bridge.CLOSE_REPLACED
                assert ended.value.final
                assert call.worker is serving
                assert node.metrics.get("bridge.refused_replaced") == 1
                assert node.metrics.get("bridge.replaced") == 1
        finally:
            await stalled.close()
