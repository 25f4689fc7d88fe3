"""Recognising an input delivered twice at different offsets: a producer's re-send after a lost ack."""

from schemas.calls import CallInput, ClockTicked

RECENT_INPUTS = 32
"""How many of a call's latest input ids are remembered. An edge re-send lands within one
publisher window (up to 500 facts of all its calls) of its original. A copy is recognised if
its call had fewer than 32 other inputs in between. That always holds for a call's few facts
a second between re-sends, but not after a long outage on a node with few calls (one call's
backlog can fill a window). Then a copy is applied twice, as before this window existed:
visible in the log under its original's `event_id`."""


def is_repeat(recent: tuple[str, ...], input_: CallInput) -> bool:
    """True when input_ carries the id of an input this call has already applied."""
    return input_.event_id in recent


def remember(recent: tuple[str, ...], input_: CallInput) -> tuple[str, ...]:
    """The window after applying input_: its id added, the oldest dropped past RECENT_INPUTS.

    Clock ticks are left out: each has a fresh id and nobody re-sends one (and, before ADR 25,
    a call got one a second, which pushed the facts that can be re-sent out of the window).
    """
    if isinstance(input_, ClockTicked):
        return recent
    return (*recent, input_.event_id)[-RECENT_INPUTS:]
