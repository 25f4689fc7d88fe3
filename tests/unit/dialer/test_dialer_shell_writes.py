"""The dialer's shell records a dial's decision on the broker before it places the call."""

from __future__ import annotations

import asyncio

from schemas.catalog import DIALER_EVENTS
from schemas.codec import Codec
from streams.dialer.shell import DialerShell
from streams.telephony.port import DialRequest
from tests.unit.dialer.dialer_scenario import OPTIONS, place, published


class Journal:
    """Every send, awaited or not, and every dial, in the order they happened."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.entries.append(("send", topic))

    async def send_and_wait(self, topic: str, key: bytes, value: bytes) -> None:
        self.entries.append(("send_and_wait", topic))

    async def place(self, request: DialRequest) -> str:
        self.entries.append(("place", request.call_id))
        return "CA-test"

    async def hang_up(self, call_sid: str) -> None:
        self.entries.append(("hang_up", call_sid))

    async def aclose(self) -> None:
        return None


def _shell(journal: Journal) -> DialerShell:
    shell = DialerShell(
        Codec.single_object(), OPTIONS, journal, send=journal.send, send_and_wait=journal.send_and_wait
    )
    shell.rebuild([published()])
    return shell


async def test_a_dial_waits_for_its_decision_to_be_on_the_broker() -> None:
    journal = Journal()
    events = await _shell(journal).apply(place("call-1"))
    await asyncio.sleep(0.05)  # the dial runs as a task
    decisions = [entry for entry in journal.entries if entry[1] == DIALER_EVENTS.name]
    assert len(decisions) == len(events) >= 2  # queued, then the attempt started
    assert decisions[-1] == ("send_and_wait", DIALER_EVENTS.name)
    placed = next(i for i, entry in enumerate(journal.entries) if entry[0] == "place")
    assert placed > journal.entries.index(decisions[-1])


async def test_decisions_that_act_on_nothing_are_not_waited_for() -> None:
    journal = Journal()
    shell = _shell(journal)
    await shell.apply(place("call-1", key="same"))
    await asyncio.sleep(0.05)  # the first call's dial and its report
    journal.entries.clear()
    events = await shell.apply(place("call-2", key="same"))  # a duplicate: recorded, nothing dialled
    await asyncio.sleep(0.05)
    assert events
    assert all(kind == "send" for kind, _ in journal.entries)
