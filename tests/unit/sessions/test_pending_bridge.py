"""PendingBridge: what a pre-warmed session sends before its stream waits, in order and bounded;
the caller's side waits for the stream; a refused token is raised where the uplink reads."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from session_fakes import TOKEN, FakeEdge, eventually

from schemas import bridge
from streams.sessions.bridge_link import BridgeRefused
from streams.sessions.pending_bridge import PendingBridge

pytestmark = pytest.mark.asyncio


def _audio(seq: int, samples: int = 480) -> bridge.AgentAudio:
    return bridge.AgentAudio(seq=seq, pcm=bytes([seq % 256, 0]) * samples)


async def test_what_was_sent_before_the_stream_reaches_the_edge_in_order_once_attached() -> None:
    pending = PendingBridge("call-1")
    greeting: list[bridge.WorkerToEdge] = [
        bridge.BeginUtterance(utterance_id="call-1:u1"),
        *(_audio(seq) for seq in range(5)),
        bridge.PlayMark(name="call-1:u1"),
    ]
    for message in greeting:
        await pending.send(message)
    async with FakeEdge() as edge:
        await asyncio.sleep(0.05)
        assert edge.connections == []  # nothing to connect to before the stream
        pending.attach(edge.url, TOKEN)
        await eventually(lambda: len(edge.received) == len(greeting))
        await pending.send(_audio(5))  # straight through from now on
        await eventually(lambda: len(edge.received) == len(greeting) + 1)
        await pending.close()
    assert edge.received == [*greeting, _audio(5)]
    assert pending.token == TOKEN


async def test_receive_waits_for_the_stream_then_reads_the_callers_audio() -> None:
    pending = PendingBridge("call-1")
    async with FakeEdge() as edge:
        reading = asyncio.create_task(pending.receive())
        await asyncio.sleep(0.05)
        assert not reading.done()
        pending.attach(edge.url, TOKEN)
        await edge.connected.wait()
        await edge.say(frames=1)
        message = await asyncio.wait_for(reading, 5)
        await pending.close()
    assert isinstance(message, bridge.CallerAudio)


async def test_agent_audio_beyond_the_bound_is_dropped_and_counted_but_marks_are_kept() -> None:
    frame = _audio(0, samples=2400)  # 100 ms at 24 kHz
    pending = PendingBridge("call-1", max_queued_audio_s=0.25)
    for seq in range(4):
        await pending.send(bridge.AgentAudio(seq=seq, pcm=frame.pcm))
    await pending.send(bridge.PlayMark(name="call-1:u1"))
    async with FakeEdge() as edge:
        pending.attach(edge.url, TOKEN)
        await eventually(lambda: len(edge.received) == 3)
        await pending.close()
    assert edge.kinds() == ["AgentAudio", "AgentAudio", "PlayMark"]
    assert pending.dropped_audio_bytes == 2 * len(frame.pcm)


async def test_a_refused_token_is_raised_to_the_reader() -> None:
    pending = PendingBridge("call-1")
    async with FakeEdge(refuse_with=bridge.CLOSE_CALL_ENDED) as edge:
        pending.attach(edge.url, TOKEN)
        with pytest.raises(BridgeRefused) as refused:
            await asyncio.wait_for(pending.receive(), 5)
        await pending.close()
    assert refused.value.code == bridge.CLOSE_CALL_ENDED


async def test_a_second_stream_does_not_move_an_attached_bridge() -> None:
    pending = PendingBridge("call-1")
    async with FakeEdge() as edge:
        pending.attach(edge.url, TOKEN)
        pending.attach(edge.url, "token-of-another-stream")
        await edge.connected.wait()
        await pending.close()
    assert pending.token == TOKEN
    assert len(edge.connections) == 1


async def test_closing_before_the_stream_or_while_opening_leaves_nothing_running() -> None:
    never = PendingBridge("call-1")
    await never.close()
    opening = PendingBridge("call-2")
    opening.attach("ws://127.0.0.1:9/bridge/call-2", TOKEN)  # nothing listens: retries back off
    await asyncio.sleep(0)
    await asyncio.wait_for(opening.close(), 1)
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("bridge-open-")] == []


class _SlowBridge:
    """A bridge whose every send takes a turn of the loop (or waits for `gate`); records closing."""

    def __init__(self, url: str, token: str) -> None:
        self.sent: list[bridge.WorkerToEdge] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.closed = False

    async def open(self) -> bridge.Hello:
        return bridge.Hello(call_id="call-1", stream_sid="MZ1")

    async def send(self, message: bridge.WorkerToEdge) -> None:
        await asyncio.sleep(0)
        await self.gate.wait()
        self.sent.append(message)

    async def close(self) -> None:
        self.closed = True


def _pending_on(slow: _SlowBridge) -> PendingBridge:
    return PendingBridge("call-1", bridge_factory=cast(Any, lambda url, token: slow))


async def test_sends_made_while_the_queue_is_flushed_go_after_it_in_order() -> None:
    slow = _SlowBridge("ws://edge", TOKEN)
    pending = _pending_on(slow)
    for seq in range(3):
        await pending.send(_audio(seq))
    pending.attach("ws://edge", TOKEN)
    await asyncio.sleep(0)  # the flush has started, and waits in its first send
    assert slow.sent == []
    for seq in range(3, 6):
        await pending.send(_audio(seq))
    await eventually(lambda: len(slow.sent) == 6)
    await pending.send(_audio(6))
    assert slow.sent == [_audio(seq) for seq in range(7)]


async def test_a_session_that_ends_during_the_flush_closes_the_bridge() -> None:
    slow = _SlowBridge("ws://edge", TOKEN)
    slow.gate.clear()  # the edge takes its time
    pending = _pending_on(slow)
    await pending.send(_audio(0))
    pending.attach("ws://edge", TOKEN)
    await asyncio.sleep(0.01)
    await asyncio.wait_for(pending.close(), 1)
    assert slow.closed
    assert slow.sent == []
