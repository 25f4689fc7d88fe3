"""An input re-sent by its producer (same event_id, new offset) is applied to its call once."""

from __future__ import annotations

import asyncio
import dataclasses
import json

from call_scenario import ShellPartition, caller_started, caller_stopped, received, stream_started, tick
from hypothesis import given, settings
from hypothesis import strategies as st
from test_call_properties import input_sequences

from schemas.calls import CallInput, CallReceived, ClockTicked
from schemas.codec import Codec
from schemas.ids import EventId
from streams.calls.repeats import RECENT_INPUTS, is_repeat, remember
from streams.calls.shell import Outcome
from streams.calls.snapshot import dump, load

CODEC = Codec.single_object()


def _fed(inputs: list[CallInput]) -> ShellPartition:
    partition = ShellPartition()

    async def run() -> None:
        for input_ in inputs:
            await partition.feed(input_)

    asyncio.run(run())
    return partition


async def test_a_fact_re_sent_after_a_lost_ack_is_applied_once() -> None:
    partition = ShellPartition()
    speech = caller_started(5)
    for input_ in (received(0), stream_started(1), speech):
        await partition.feed(input_)
    assert len(partition.emitted) == 3

    repeat = await partition.feed(speech)  # the same record again, at a later offset

    assert repeat == Outcome(None, 0, repeat=True)
    assert len(partition.emitted) == 3
    stopped = await partition.feed(caller_stopped(6))
    assert stopped.emitted == 1
    assert [CODEC.decode(value).seq for value in partition.emitted] == [1, 2, 3, 4]


async def test_a_re_sent_fact_is_recognised_after_other_facts_and_ticks_in_between() -> None:
    partition = ShellPartition()
    speech = caller_started(5)
    for input_ in (received(0), stream_started(1), speech, caller_stopped(6)):
        await partition.feed(input_)
    for second in range(7, 7 + 3 * RECENT_INPUTS):  # ticks do not push facts out of the window
        await partition.feed(tick(second))
    emitted = len(partition.emitted)

    assert (await partition.feed(speech)).repeat
    assert len(partition.emitted) == emitted


async def test_the_window_is_bounded_and_forgets_the_oldest_id() -> None:
    partition = ShellPartition()
    first = caller_started(2)
    await partition.feed(received(0))
    await partition.feed(first)
    for n in range(RECENT_INPUTS):
        await partition.feed(caller_stopped(3 + n))
    assert partition.stored is not None
    recent = load(partition.stored).recent_input_ids
    assert len(recent) == RECENT_INPUTS
    assert first.event_id not in recent  # past the window: a copy this late is applied again


def test_a_snapshot_from_before_the_window_loads_with_an_empty_one() -> None:
    partition = _fed([received(0), stream_started(1)])
    assert partition.stored is not None
    document = json.loads(partition.stored)
    del document["recent_input_ids"]
    old = load(json.dumps(document).encode())
    assert old.recent_input_ids == ()
    assert dump(old) != partition.stored  # written back with the window from now on


def test_clock_ticks_are_not_remembered() -> None:
    assert remember(("a",), tick(3)) == ("a",)
    assert remember(("a",), caller_started(3)) == ("a", caller_started(3).event_id)
    assert is_repeat(("a", caller_started(3).event_id), caller_started(3))
    assert not is_repeat(("a",), caller_started(3))


def _unique_ids(inputs: list[CallInput]) -> list[CallInput]:
    """Each input with an id of its own, as real producers give them (the scenario's ids are per time)."""
    return [dataclasses.replace(r, event_id=EventId(f"{i}-{r.event_id}")) for i, r in enumerate(inputs)]


@st.composite
def _with_re_sends(draw: st.DrawFn) -> tuple[list[CallInput], list[CallInput]]:
    """A call's inputs, and the same inputs with some re-sent copies a few records later."""
    inputs = _unique_ids(draw(input_sequences()))
    # Only inputs applied to a call can be recognised: none arrives before its CallReceived.
    opened = next((i for i, record in enumerate(inputs) if isinstance(record, CallReceived)), len(inputs))
    delivered = list(inputs)
    for _ in range(draw(st.integers(0, 6))):
        if opened >= len(inputs):
            break
        original = draw(st.integers(opened, len(inputs) - 1))
        if isinstance(inputs[original], ClockTicked):
            continue
        position = delivered.index(inputs[original])
        delay = draw(st.integers(1, 5))
        delivered.insert(min(position + delay, len(delivered)), inputs[original])
    return inputs, delivered


@settings(max_examples=200, deadline=None)
@given(_with_re_sends())
def test_re_sent_copies_never_change_the_call_log(pair: tuple[list[CallInput], list[CallInput]]) -> None:
    inputs, delivered = pair
    assert _fed(delivered).emitted == _fed(inputs).emitted
