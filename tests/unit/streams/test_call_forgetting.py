"""The calls shell on clock ticks: ended calls forgotten after the retention; quiet ticks store nothing."""

from __future__ import annotations

from datetime import timedelta

from schemas.codec import Codec
from streams.calls.shell import CallInputHandler, Outcome
from streams.calls.snapshot import load
from tests.unit.streams.call_scenario import LIMITS, received, recording, stream_started, stream_stopped, tick

CODEC = Codec.single_object()
RETENTION = timedelta(hours=1)


class _Log:
    """The call events topic: what the shell emitted."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def emit(self, _key: bytes, value: bytes) -> None:
        self.sent.append(value)


async def _run(
    handler: CallInputHandler, stored: bytes | None, *inputs: object
) -> tuple[bytes | None, Outcome]:
    log, outcome = _Log(), Outcome(None, 0)
    for offset, input_ in enumerate(inputs, start=1 if stored is None else load(stored).input_offset + 1):
        outcome = await handler.handle(stored, CODEC.encode(input_), offset, log.emit)
        if outcome.forget:
            stored = None
        elif outcome.snapshot is not None:
            stored = outcome.snapshot
    return stored, outcome


async def test_an_ended_call_is_kept_for_the_retention_then_forgotten() -> None:
    handler = CallInputHandler(CODEC, LIMITS, ended_retention=RETENTION)
    stored, _ = await _run(handler, None, received(0), stream_started(1), stream_stopped(60))
    assert stored is not None
    assert not load(stored).state.live
    ended_s = 60

    kept, outcome = await _run(handler, stored, tick(ended_s + 3599))
    assert kept is not None
    assert not outcome.forget
    kept, outcome = await _run(handler, kept, recording(ended_s + 3599.5))  # a late fact still counts
    assert outcome.emitted == 1

    gone, outcome = await _run(handler, kept, tick(ended_s + 3600))
    assert outcome.forget
    assert gone is None


async def test_a_live_call_is_never_forgotten_however_old() -> None:
    handler = CallInputHandler(CODEC, LIMITS, ended_retention=timedelta(seconds=1))
    stored, _ = await _run(handler, None, received(0), stream_started(1))
    stored, outcome = await _run(handler, stored, tick(5))
    assert stored is not None
    assert load(stored).state.live
    assert not outcome.forget


async def test_without_a_retention_ended_calls_are_kept() -> None:
    handler = CallInputHandler(CODEC, LIMITS)
    stored, _ = await _run(handler, None, received(0), stream_started(1), stream_stopped(60))
    kept, outcome = await _run(handler, stored, tick(10**6))
    assert kept is not None
    assert not outcome.forget


async def test_a_fact_for_a_forgotten_call_changes_nothing() -> None:
    handler = CallInputHandler(CODEC, LIMITS, ended_retention=RETENTION)
    stored, _ = await _run(handler, None, received(0), stream_started(1), stream_stopped(60))
    assert stored is not None
    gone, outcome = await _run(handler, stored, tick(60 + 3600))
    assert outcome.forget
    assert gone is None
    late = await handler.handle(gone, CODEC.encode(recording(60 + 3601)), 99, _Log().emit)
    assert (late.snapshot, late.emitted, late.forget) == (None, 0, False)


async def test_a_tick_that_fires_no_timer_stores_nothing_and_one_that_fires_stores_its_events() -> None:
    handler = CallInputHandler(CODEC, LIMITS)
    stored, _ = await _run(handler, None, received(0), stream_started(1))
    assert stored is not None
    quiet = await handler.handle(stored, CODEC.encode(tick(5)), load(stored).input_offset + 1, _Log().emit)
    assert quiet == Outcome(None, 0)  # no changelog write a second per live call
    log = _Log()
    due = await handler.handle(stored, CODEC.encode(tick(LIMITS.max_duration_s + 2)), 99, log.emit)
    assert due.emitted >= 1
    assert log.sent
    assert due.snapshot is not None
    assert load(due.snapshot).input_offset == 99
