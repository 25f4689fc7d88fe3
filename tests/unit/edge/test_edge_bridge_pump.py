"""The call's pump to its worker, with fake workers: it awaits its sends itself (no task per round,
the hot path while a worker's socket is over its high-water mark), yet a send that waits on a
worker replaced or dropped meanwhile is abandoned, and what it had not sent goes to the next."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from websockets.protocol import State

from edge.call import LiveCall
from edge.media_socket import MediaLoop
from schemas import bridge
from tests.support.edge_calls import START, edge_node
from tests.support.twilio_socket import RecordingTwilioSocket


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 1 << 20  # over the high-water mark: everything goes through the pump

    def abort(self) -> None:
        pass


class _Worker:
    """A worker connection whose sends take at once, or, while ``hung``, never."""

    def __init__(self, *, hung: bool = False) -> None:
        self.transport = _Transport()
        self.protocol = SimpleNamespace(state=State.OPEN, data_to_send=list)
        self.hung = hung
        self.waiting = False
        self.sent: list[Any] = []
        self.senders: set[str] = set()

    async def send(self, data: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.senders.add(task.get_name())
        if self.hung:
            self.waiting = True
            await asyncio.get_running_loop().create_future()  # its socket never drains
        self.sent.append(data)


def _call() -> tuple[MediaLoop, LiveCall]:
    loop = MediaLoop(RecordingTwilioSocket(), edge_node())
    loop.on_message(START)
    assert loop.call is not None
    return loop, loop.call


async def _until(condition: Callable[[], bool], within: float = 1.0) -> bool:
    for _ in range(int(within / 0.005)):
        if condition():
            return True
        await asyncio.sleep(0.005)
    return condition()


def _mark(name: str) -> bridge.MarkReached:
    return bridge.MarkReached(name=name, stream_ms=0)


def _attach(call: LiveCall, worker: _Worker) -> None:
    call.attach_worker(worker)  # type: ignore[arg-type]


async def test_a_pump_round_sends_from_the_pump_itself() -> None:
    loop, call = _call()
    worker = _Worker()
    _attach(call, worker)
    try:
        call.notify_worker(_mark("m1"))
        call.session.caller.push(b"\x00" * 649)
        call.caller_audio_ready()
        assert await _until(lambda: len(worker.sent) == 2)
        assert worker.senders == {"bridge-out-call-1"}
    finally:
        await loop.finish("twilio_stop")


async def test_a_send_waiting_on_a_replaced_worker_is_abandoned_and_the_next_worker_gets_it() -> None:
    loop, call = _call()
    hung, new = _Worker(hung=True), _Worker()
    _attach(call, hung)
    try:
        call.notify_worker(_mark("m1"))
        assert await _until(lambda: hung.waiting)
        call.notify_worker(_mark("m2"))

        _attach(call, new)  # failover

        assert await _until(lambda: len(new.sent) == 2)
        assert [json.loads(s)["name"] for s in new.sent] == ["m1", "m2"]
        assert call.worker_sending_since is None
        # The pump goes on serving the new worker.
        call.notify_worker(_mark("m3"))
        assert await _until(lambda: len(new.sent) == 3)
        assert not call._pump.done()
        assert call._pump.cancelling() == 0
    finally:
        await loop.finish("twilio_stop")
    assert call._pump.cancelled()


async def test_a_hung_worker_dropped_by_the_watchdog_frees_the_pump_for_the_next() -> None:
    loop, call = _call()
    hung = _Worker(hung=True)
    _attach(call, hung)
    try:
        call.notify_worker(_mark("m1"))
        assert await _until(lambda: hung.waiting)
        timeout = call.node.settings.edge.bridge_send_timeout_s
        call.check_worker(asyncio.get_running_loop().time() + timeout + 1)
        assert call.worker is None
        assert call.node.metrics.get("bridge.worker_stalled") == 1
        call.notify_worker(_mark("m2"))  # held for the next worker
        await asyncio.sleep(0.01)
        new = _Worker()
        _attach(call, new)
        assert await _until(lambda: len(new.sent) == 2)
        assert not call._pump.done()
    finally:
        await loop.finish("twilio_stop")


async def test_the_call_finishing_as_a_send_is_abandoned_still_stops_the_pump() -> None:
    loop, call = _call()
    hung = _Worker(hung=True)
    _attach(call, hung)
    call.notify_worker(_mark("m1"))
    assert await _until(lambda: hung.waiting)
    _attach(call, _Worker())  # the pump is cancelled as abandoned...
    async with asyncio.timeout(1.0):
        await loop.finish("twilio_stop")  # ...and by the finish, before it ran again
    assert call._pump.cancelled()
