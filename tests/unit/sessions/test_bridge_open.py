"""Bridge.open: a busy edge is retried on the first connection too; a refused token is not."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from schemas import bridge
from streams.sessions.bridge_link import Bridge, BridgeClosed, BridgeLink, BridgeLost

HELLO = bridge.Hello(call_id="c-1", stream_sid="MZ1")


class FakeLink:
    """An open link whose first frame is the edge's hello."""

    bad_frames = 0

    async def receive(self) -> bridge.Hello:
        return HELLO

    async def close(self) -> None:
        return None


class Edge:
    """Fails the first `failures` connection attempts the way a busy edge does, then answers."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or TimeoutError("timed out during opening handshake")
        self.attempts = 0

    async def open_link(self, url: str, token: str) -> BridgeLink:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        return cast(BridgeLink, cast(Any, FakeLink()))


def _bridge(edge: Edge) -> Bridge:
    return Bridge("ws://edge/bridge/c-1", "token", attempts=3, backoff_s=0.001, open_link=edge.open_link)


async def test_a_busy_edge_is_retried_on_the_first_connection() -> None:
    edge = Edge(failures=2)
    link = _bridge(edge)
    assert await link.open() == HELLO
    assert (edge.attempts, link.reconnects) == (3, 1)


async def test_an_edge_that_never_answers_gives_up_with_bridge_lost() -> None:
    edge = Edge(failures=10, error=OSError("connection refused"))
    with pytest.raises(BridgeLost):
        await _bridge(edge).open()
    assert edge.attempts == 4  # the first try and three retries


async def test_a_refused_token_is_final_at_once() -> None:
    class Refusing(Edge):
        async def open_link(self, url: str, token: str) -> BridgeLink:
            self.attempts += 1
            raise BridgeClosed(bridge.CLOSE_BAD_TOKEN, "refused")

    edge = Refusing(failures=0)
    with pytest.raises(BridgeClosed) as refused:
        await _bridge(edge).open()
    assert refused.value.final
    assert edge.attempts == 1


async def test_a_connection_given_up_before_the_hello_is_closed_not_leaked() -> None:
    class Silent(FakeLink):
        closed = False

        async def receive(self) -> bridge.Hello:
            await asyncio.Event().wait()  # the edge never says hello
            raise AssertionError("unreachable")

        async def close(self) -> None:
            self.closed = True

    link = Silent()

    async def open_link(url: str, token: str) -> BridgeLink:
        return cast(BridgeLink, cast(Any, link))

    connecting = asyncio.create_task(Bridge("ws://edge/bridge/c-1", "token", open_link=open_link).connect())
    await asyncio.sleep(0.01)
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert link.closed
