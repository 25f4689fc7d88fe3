"""Peers that stop reading, over real loopback sockets: a Twilio client with a zero TCP window must
still have its call finished, and a hung session worker must not hold up the call's failover.

Small socket buffers make a stuck peer show in a fraction of a second; the close deadlines are
shortened so that each test takes about a second (except where a test needs one long, to tell what
happens before it from what happens after).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import uvloop
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import edge.bridge_server as bridge_server
import edge.media_protocol as media_protocol
from edge.call import LiveCall
from edge.media_protocol import MediaStreamProtocol
from edge.media_socket import MediaLoop
from edge.node import EdgeNode
from edge.publisher import RecordingPublisher
from edge.signature import SignatureChecker
from edge.wsframe import TEXT, server_frame
from schemas import bridge
from schemas.call_media import MediaStreamStopped
from schemas.registry import Record
from tests.support.edge_calls import START, BridgedCall, bridged_call, edge_node

_SMALL = 2048  # bytes of socket buffer: a peer that stops reading fills it at once


def _published(node: EdgeNode) -> list[Record]:
    publisher = node.publisher
    assert isinstance(publisher, RecordingPublisher)
    return publisher.records


def _stop_reasons(node: EdgeNode) -> list[str]:
    return [r.reason for r in _published(node) if isinstance(r, MediaStreamStopped)]


def _client_frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    n = len(payload)
    head = (
        struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        if n < 126
        else struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    )
    return head + key + masked


def _media(seq: int) -> str:
    payload = base64.b64encode(b"\x7f" * 160).decode()
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "streamSid": "MZ1",
            "media": {"track": "inbound", "timestamp": str((seq - 2) * 20), "payload": payload},
        }
    )


def _upgrade(path: str, key_header: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{key_header}\r\n\r\n"
    ).encode()


async def _until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# --- a Twilio client that stops reading -------------------------------------------------------


_Ending = Callable[[EdgeNode, MediaStreamProtocol, LiveCall], Awaitable[None]]


async def _stuck_twilio_client(monkeypatch: pytest.MonkeyPatch, end: _Ending) -> EdgeNode:
    """A call whose Twilio client stops reading once it started; ``end`` then ends it some way.

    Returns the node once the call has finished (or 3 s after ``end``: the test then fails).
    """
    monkeypatch.setattr(media_protocol, "_CLOSE_TIMEOUT_S", 0.3)
    node = edge_node(twilio_send_timeout_s=0.3, idle_timeout_s=1000.0, agent_wait_s=0.0)
    checker = SignatureChecker("tok", "https://edge.example.com")
    config = SimpleNamespace(ws_max_size=1 << 20, ws_ping_interval=None)
    made: list[MediaStreamProtocol] = []

    def factory() -> MediaStreamProtocol:
        made.append(MediaStreamProtocol.bound(node, checker)(config, SimpleNamespace(connections=set()), {}))
        return made[-1]

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    client = socket.socket()
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SMALL)
        client.setblocking(False)
        await asyncio.get_running_loop().sock_connect(client, server.sockets[0].getsockname())
        signature = RequestValidator("tok").compute_signature("wss://edge.example.com/twilio/media", {})
        client.sendall(_upgrade("/twilio/media", f"X-Twilio-Signature: {signature}"))
        assert await _until(lambda: bool(made) and made[0].media is not None, 2.0)
        client.sendall(_client_frame(0x1, START.encode()))
        proto = made[0]
        assert await _until(lambda: "call-1" in node.calls, 2.0)
        assert proto.media is not None
        assert proto.media.call is not None
        call = proto.media.call
        assert proto.transport is not None
        proto.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SMALL)
        proto.transport.set_write_buffer_limits(high=4096)
        await end(node, proto, call)
        await _until(lambda: not node.calls, 3.0)
        return node
    finally:
        client.close()
        server.close()


async def _agent_talks_to_a_deaf_client(node: EdgeNode, proto: MediaStreamProtocol, call: LiveCall) -> None:
    """The agent speaks; the client takes none of it: the watchdog ends the call as a slow client."""
    pcm = (np.sin(np.arange(48000) / 10) * 8000).astype("<i2").tobytes()
    for _ in range(30):
        call.session.playback.enqueue(pcm)
    call.playback_ready()
    assert await _until(lambda: node.metrics.get("bad_input.slow_client") == 1, 3.0)


async def _fill(proto: MediaStreamProtocol) -> None:
    assert proto.transport is not None
    while proto.writable.is_set():
        proto.transport.write(server_frame(TEXT, b"x" * 1000))
        await asyncio.sleep(0)


async def _drain_ends_it(node: EdgeNode, proto: MediaStreamProtocol, call: LiveCall) -> None:
    await _fill(proto)
    await call.end("edge_shutdown")  # what EdgeServer.drain does at its deadline


async def _uvicorn_exits(node: EdgeNode, proto: MediaStreamProtocol, call: LiveCall) -> None:
    await _fill(proto)
    proto.shutdown()


def _assert_finished_once(node: EdgeNode, reason: str) -> None:
    assert node.calls == {}, "the call still holds its stream slot"
    assert node.drained.is_set()
    assert _stop_reasons(node) == [reason]
    assert node.metrics.get(f"streams.stopped.{reason}") == 1
    assert node.metrics.get("streams.aborted") == 1


async def test_a_twilio_client_that_stops_reading_is_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    node = await _stuck_twilio_client(monkeypatch, _agent_talks_to_a_deaf_client)
    _assert_finished_once(node, "error")


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        (_agent_talks_to_a_deaf_client, "error"),
        (_drain_ends_it, "edge_shutdown"),
        (_uvicorn_exits, "socket_closed"),
    ],
    ids=["slow_client", "drain", "uvicorn_shutdown"],
)
def test_a_stuck_twilio_client_is_finished_on_uvloop(
    monkeypatch: pytest.MonkeyPatch, end: _Ending, reason: str
) -> None:
    """uvloop's transport (what ``python -m edge`` runs) behaves the same."""

    async def scenario() -> EdgeNode:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        return await _stuck_twilio_client(monkeypatch, end)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        node = runner.run(scenario())
    _assert_finished_once(node, reason)


async def test_a_stuck_twilio_client_ended_by_the_drain_finishes_as_edge_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = await _stuck_twilio_client(monkeypatch, _drain_ends_it)
    _assert_finished_once(node, "edge_shutdown")


async def test_uvicorn_shutting_down_drops_a_stuck_twilio_client(monkeypatch: pytest.MonkeyPatch) -> None:
    node = await _stuck_twilio_client(monkeypatch, _uvicorn_exits)
    _assert_finished_once(node, "socket_closed")


# --- a session worker that stops reading ------------------------------------------------------


async def _hung_worker(
    node: EdgeNode, port: int, token: str, call: LiveCall, worker_id: str | None = None
) -> socket.socket:
    """A worker connection that takes its hello and then never reads again, its socket full."""
    old = socket.socket()
    old.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SMALL)
    old.setblocking(False)
    await asyncio.get_running_loop().sock_connect(old, ("127.0.0.1", port))
    headers = f"{bridge.TOKEN_HEADER}: {token}"
    if worker_id is not None:
        headers += f"\r\n{bridge.WORKER_HEADER}: {worker_id}"
    old.sendall(_upgrade("/bridge/call-1", headers))
    assert await _until(lambda: call.worker is not None, 2.0)
    assert call.worker is not None
    call.worker.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SMALL)
    return old


def _sends_wait(call: LiveCall) -> bool:
    """The edge's send to the call's worker has waited a while for its full socket to drain.

    (Not the write buffer's size: once over the high-water mark, a send waits until the buffer
    is below the low one, and the kernel may have taken a few bytes back under the high one.)
    """
    since = call.worker_sending_since
    return call.worker is not None and since is not None and asyncio.get_running_loop().time() - since > 0.2


async def _caller_talks(loop: MediaLoop, first: int, frames: int) -> int:
    for seq in range(first, first + frames):
        loop.on_message(_media(seq))
        await asyncio.sleep(0)
    return first + frames


async def _talk_until_sends_wait(loop: MediaLoop, call: LiveCall) -> int:
    """The caller talks until the edge's sends to the hung worker wait (how much the kernel's
    buffers take first varies from run to run); the next sequence number."""
    seq, talked_until = 2, time.monotonic() + 5.0
    while not _sends_wait(call) and time.monotonic() < talked_until:
        seq = await _caller_talks(loop, seq, 50)
        await asyncio.sleep(0.01)
    assert _sends_wait(call)
    return seq


@contextlib.asynccontextmanager
async def _sends_waiting_on_a_hung_worker(
    monkeypatch: pytest.MonkeyPatch,
    worker_id: str | None = None,
    replaced_close_s: float = 0.3,
    **edge: Any,
) -> AsyncIterator[tuple[BridgedCall, int]]:
    """A call whose hung worker (dropped ``replaced_close_s`` after it is replaced, shortened to
    0.3 s by default) is sent to until the sends wait; the call and the caller's next sequence
    number. ``edge`` overrides the node's edge settings. The hung worker's socket closes after."""
    monkeypatch.setattr(bridge_server, "_REPLACED_CLOSE_TIMEOUT_S", replaced_close_s)
    node = edge_node(**{"agent_wait_s": 0.0, **edge})
    async with bridged_call(node) as live:
        old = await _hung_worker(node, live.port, live.token, live.call, worker_id=worker_id)
        try:
            yield live, await _talk_until_sends_wait(live.loop, live.call)
        finally:
            old.close()


async def test_failover_from_a_hung_worker_serves_the_new_one_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The replaced (hung) worker is dropped only after 10 s, and the watchdog that drops a worker
    # which takes no frame waits 30 s: the new worker must hear the caller and be played while the
    # hung one is still connected. An edge whose sends kept waiting on the hung worker would serve
    # the new one only once the hung one is dropped; timings are measured in bench/, not here.
    async with _sends_waiting_on_a_hung_worker(
        monkeypatch, replaced_close_s=10.0, bridge_send_timeout_s=30.0
    ) as (live, seq):
        node, loop, token, port = live.node, live.loop, live.token, live.port

        def hung_worker_still_there() -> bool:
            return (
                node.metrics.get("bridge.replaced_aborted") == 0
                and node.metrics.get("bridge.worker_stalled") == 0
            )

        attached = time.monotonic()
        async with connect(
            f"ws://127.0.0.1:{port}/bridge/call-1",
            additional_headers={bridge.TOKEN_HEADER: token},
            max_queue=None,  # this worker reads all it is sent, even when the test does not ask
        ) as new:
            assert "hello" in str(await new.recv())
            pcm = (np.sin(np.arange(4800) / 7) * 6000).astype("<i2").tobytes()
            await new.send(bridge.encode_agent_audio(0, pcm))
            heard_caller = False
            while not heard_caller and time.monotonic() - attached < 5.0:  # a guard only
                seq = await _caller_talks(loop, seq, 1)
                with contextlib.suppress(TimeoutError):
                    heard_caller = isinstance(await asyncio.wait_for(new.recv(), 0.02), bytes)
            assert heard_caller, "no caller audio reached the new worker"
            assert hung_worker_still_there(), (
                "the new worker heard the caller only once the hung one was dropped"
            )
            played = await _until(lambda: any('"media"' in s for s in live.twilio.sent), 5.0)
            assert played, "the new worker's audio was not played"
            assert hung_worker_still_there(), "the new worker was played only once the hung one was dropped"
        assert node.metrics.get("bridge.replaced") == 1


async def test_a_hung_worker_with_no_failover_is_dropped_and_the_call_ends_without_agent() -> None:
    node = edge_node(bridge_send_timeout_s=0.3, agent_wait_s=0.5)
    async with bridged_call(node) as live:
        loop, call, twilio = live.loop, live.call, live.twilio
        old = await _hung_worker(node, live.port, live.token, call)
        try:
            seq = await _caller_talks(loop, 2, 400)
            assert await _until(lambda: node.metrics.get("bridge.worker_stalled") == 1, 2.0)
            assert call.worker is None
            assert call.without_agent_since is not None  # the wait for another worker has begun
            await _caller_talks(loop, seq, 10)  # buffered for the next worker; the call goes on
            assert await _until(lambda: node.metrics.get("streams.no_agent") == 1, 2.0)
            assert await _until(lambda: twilio.closed is not None, 2.0)
        finally:
            old.close()
    assert _stop_reasons(node) == ["no_agent"]


async def test_a_replaced_worker_is_not_played_while_it_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The old worker (which never answers the close) still sends agent audio after a newer one
    # took the call: two workers' audio must not interleave on the caller's line.
    monkeypatch.setattr(bridge_server, "_REPLACED_CLOSE_TIMEOUT_S", 1.0)
    node = edge_node(agent_wait_s=0.0)
    async with bridged_call(node) as live:
        call, token, port = live.call, live.token, live.port
        old = await _hung_worker(node, port, token, call)
        try:
            async with connect(
                f"ws://127.0.0.1:{port}/bridge/call-1", additional_headers={bridge.TOKEN_HEADER: token}
            ) as new:
                assert "hello" in str(await new.recv())
                assert await _until(lambda: node.metrics.get("bridge.replaced") == 1, 1.0)
                pcm = b"\x10\x00" * 2400  # 100 ms
                old.sendall(_client_frame(0x2, bridge.encode_agent_audio(0, pcm)))
                assert await _until(lambda: node.metrics.get("bridge.directives_after_replaced") == 1, 1.0)
                assert call.session.playback.audio_queued == 0
        finally:
            old.close()


# --- a replaced worker coming back ------------------------------------------------------------


async def _refused_with(url: str, headers: dict[str, str]) -> int | None:
    """Connect as a worker; the close code the edge answers with before any hello (None: a hello)."""
    async with connect(url, additional_headers=headers) as ws:
        try:
            first = await asyncio.wait_for(ws.recv(), 2.0)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else -1
        assert "hello" in str(first)
        return None


async def test_a_stalled_worker_dropped_without_its_4409_cannot_take_the_call_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The replaced worker was only stalled: its 4409 was thrown away with its connection, so it
    # sees a close with no code and reconnects with the call's token. Taking the call back would
    # replace the worker that serves it now (which would then hold off, as replaced, and the call
    # ping-pong), so the edge refuses it with 4409, which is final for the worker.
    async with _sends_waiting_on_a_hung_worker(monkeypatch, worker_id="w-old") as (live, seq):
        node, loop, call, token, url = live.node, live.loop, live.call, live.token, live.url
        headers = {bridge.TOKEN_HEADER: token, bridge.WORKER_HEADER: "w-new"}
        async with connect(url, additional_headers=headers, max_queue=None) as new:
            assert "hello" in str(await new.recv())
            assert await _until(lambda: node.metrics.get("bridge.replaced_aborted") == 1, 2.0)
            serving = call.worker
            assert serving is not None

            back = {bridge.TOKEN_HEADER: token, bridge.WORKER_HEADER: "w-old"}
            assert await _refused_with(url, back) == bridge.CLOSE_REPLACED
            assert call.worker is serving, "the worker that serves the call was replaced"
            assert node.metrics.get("bridge.replaced") == 1
            assert node.metrics.get("bridge.refused_replaced") == 1
            # ...and the worker that serves the call still hears the caller.
            await _caller_talks(loop, seq, 1)
            assert isinstance(await asyncio.wait_for(new.recv(), 2.0), bytes)


async def test_a_replaced_worker_may_come_back_once_no_worker_serves_the_call() -> None:
    node = edge_node(agent_wait_s=0.0)
    async with bridged_call(node) as live:
        call, token, url = live.call, live.token, live.url
        as_old = {bridge.TOKEN_HEADER: token, bridge.WORKER_HEADER: "w-old"}
        async with connect(url, additional_headers=as_old) as old:
            assert "hello" in str(await old.recv())
            new_headers = {bridge.TOKEN_HEADER: token, bridge.WORKER_HEADER: "w-new"}
            async with connect(url, additional_headers=new_headers) as new:
                assert "hello" in str(await new.recv())
                with pytest.raises(ConnectionClosed) as replaced:
                    await asyncio.wait_for(old.recv(), 2.0)
                assert replaced.value.rcvd is not None
                assert replaced.value.rcvd.code == bridge.CLOSE_REPLACED
                assert await _refused_with(url, as_old) == bridge.CLOSE_REPLACED
                # A connection that names no worker keeps the old rule: it replaces.
                assert await _refused_with(url, {bridge.TOKEN_HEADER: token}) is None
            assert await _until(lambda: call.worker is None, 2.0)
        # Nobody serves the call now: the partition moved back, the old worker takes it again.
        assert await _refused_with(url, as_old) is None
        assert node.metrics.get("bridge.refused_replaced") == 1
        assert node.metrics.get("bridge.replaced") == 2


async def test_a_worker_reconnecting_over_its_own_connection_is_not_refused() -> None:
    # A worker whose link dropped reconnects before the edge noticed the drop: the connection it
    # replaces is its own, and it is not a replaced worker afterwards either.
    node = edge_node(agent_wait_s=0.0)
    async with bridged_call(node) as live:
        call, token, url = live.call, live.token, live.url
        headers = {bridge.TOKEN_HEADER: token, bridge.WORKER_HEADER: "w-1"}
        async with connect(url, additional_headers=headers) as first:
            assert "hello" in str(await first.recv())
            async with connect(url, additional_headers=headers) as second:
                assert "hello" in str(await second.recv())
                assert call.worker is not None
                assert call.worker_id == "w-1"
                other = {bridge.TOKEN_HEADER: token, bridge.WORKER_HEADER: "w-2"}
                async with connect(url, additional_headers=other) as takeover:  # a rebalance
                    assert "hello" in str(await takeover.recv())
                    assert await _refused_with(url, headers) == bridge.CLOSE_REPLACED
        assert node.metrics.get("bridge.replaced") == 2
        assert node.metrics.get("bridge.refused_replaced") == 1
