"""Recognising an input delivered twice at different offsets: a producer's re-send after a lost ack."""

from schemas.calls import CallInput, ClockTicked

RECENT_INPUTS = 32
"""How many of a call's latest input ids are remembered. A re-send lands within one publisher
window of its original, and a call contributes a few facts a second to a window, so this
covers tens of seconds of one call's facts."""


def is_repeat(recent: tuple[str, ...], input_: CallInput) -> bool:
    """True when input_ carries the id of an input this call has already applied."""
    return input_.event_id in recent


def remember(recent: tuple[str, ...], input_: CallInput) -> tuple[str, ...]:
    """The window after applying input_: its id added, the oldest dropped past RECENT_INPUTS.

    Clock ticks are left out: each has a fresh id, nobody re-sends one, and a call gets one a
    second, which would push the facts that can be re-sent out of the window.
    """
    if isinstance(input_, ClockTicked):
        return recent
    return (*recent, input_.event_id)[-RECENT_INPUTS:]
