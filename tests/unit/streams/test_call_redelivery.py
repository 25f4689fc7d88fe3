"""The calls shell skips an input re-delivered at an offset already applied, by offset alone."""

from __future__ import annotations

import dataclasses

from schemas.codec import Codec
from streams.calls.shell import CallInputHandler
from streams.calls.snapshot import dump, load
from tests.unit.streams.call_scenario import LIMITS, received, stream_started, stream_stopped

CODEC = Codec.single_object()


async def test_an_input_at_the_offset_already_applied_is_skipped_even_without_its_id_remembered() -> None:
    """After a crash between the table update and the commit, the last input comes back at the
    same offset. The snapshot's offset must catch it on its own: a snapshot written before
    inputs' ids were kept (or past the window of ids) does not hold its id."""
    handler = CallInputHandler(CODEC, LIMITS)
    sent: list[bytes] = []

    async def emit(_key: bytes, value: bytes) -> None:
        sent.append(value)

    stored = None
    for offset, input_ in enumerate((received(0), stream_started(1), stream_stopped(30)), start=1):
        outcome = await handler.handle(stored, CODEC.encode(input_), offset, emit)
        stored = outcome.snapshot or stored
    assert stored is not None
    without_ids = dump(dataclasses.replace(load(stored), recent_input_ids=()))
    before = len(sent)

    outcome = await handler.handle(without_ids, CODEC.encode(stream_stopped(30)), 3, emit)

    assert (outcome.snapshot, outcome.emitted, len(sent)) == (None, 0, before)
