"""The dialer's shell records a dial's decision on the broker before it places the call, through outages."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from aiokafka.errors import KafkaConnectionError

from schemas.calls import CallReceived
from schemas.catalog import DIALER_EVENTS
from schemas.codec import Codec
from streams.dialer.shell import DialerShell
from streams.telephony.port import DialRequest
from tests.unit.dialer.dialer_scenario import OPTIONS, TENANT, place, published


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

    async def cancel(self, call_sid: str) -> None:
        self.entries.append(("cancel", call_sid))

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


class OutageJournal(Journal):
    """The broker is away for the first ``outage`` awaited sends; what it acknowledged is kept."""

    def __init__(self, outage: int) -> None:
        super().__init__()
        self.outage = outage
        self.log: list[bytes] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        await super().send(topic, key, value)
        self.log.append(value)

    async def send_and_wait(self, topic: str, key: bytes, value: bytes) -> None:
        if self.outage:
            self.outage -= 1
            raise KafkaConnectionError("broker away")
        await super().send_and_wait(topic, key, value)
        self.log.append(value)


async def test_a_dial_decided_during_an_outage_waits_for_the_broker_and_dials_once() -> None:
    journal = OutageJournal(outage=2)
    shell = DialerShell(
        Codec.single_object(),
        OPTIONS,
        journal,
        send=journal.send,
        send_and_wait=journal.send_and_wait,
        send_backoff_s=(0.01,),
    )
    shell.rebuild([published()])
    events = await shell.apply(place("call-1"))
    await asyncio.sleep(0.05)
    assert [entry for entry in journal.entries if entry[0] == "place"] == [("place", "call-1")]
    # Memory and the log agree: a worker rebuilt from the log holds the same attempt.
    codec = Codec.single_object()
    logged = [codec.decode(value) for value in journal.log]
    assert [type(e).__name__ for e in logged[: len(events)]] == [type(e).__name__ for e in events]


def test_a_rebuild_applies_each_event_once_when_the_log_holds_copies() -> None:
    journal = Journal()
    once, twice = _shell(journal), _shell(journal)
    codec = Codec.single_object()
    events = asyncio.run(once.apply(place("call-1")))
    once_state = DialerShell(codec, OPTIONS, journal, send=journal.send, send_and_wait=journal.send_and_wait)
    once_state.rebuild([published(), *events])
    twice.rebuild([*events, *events])  # every event re-sent after a lost ack
    assert twice.state(TENANT) == once_state.state(TENANT)
    assert len(twice.state(TENANT).live) == 1


async def test_an_input_stamped_far_ahead_of_the_dialers_clock_is_refused_unapplied() -> None:
    journal = Journal()
    shell = _shell(journal)
    ahead = dataclasses.replace(place("call-1"), occurred_at=datetime.now(UTC) + timedelta(days=2))
    refusal = await shell.handle(Codec.single_object().encode(ahead))
    assert refusal is not None
    assert refusal.reason == "rejected_by_handler"
    assert "ahead of this worker's clock" in refusal.detail
    assert journal.entries == []
    assert shell.state(TENANT).requests == {}


async def test_a_call_read_late_is_received_when_it_is_placed_not_when_it_was_asked_for() -> None:
    journal = OutageJournal(outage=0)
    shell = _shell(journal)
    asked = datetime.now(UTC) - timedelta(minutes=10)  # produced during an outage, read now
    await shell.apply(dataclasses.replace(place("call-1"), occurred_at=asked))
    await asyncio.sleep(0.05)
    codec = Codec.single_object()
    (received,) = [r for r in map(codec.decode, journal.log) if isinstance(r, CallReceived)]
    assert datetime.now(UTC) - received.occurred_at < timedelta(seconds=5)
