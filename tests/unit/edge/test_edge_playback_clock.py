"""The shared playback clock and the deadline watchdog (timing shells of the edge)."""

from __future__ import annotations

import asyncio

from edge.playback_clock import PlaybackClock
from edge.watchdog import Watchdog


async def test_a_slot_fires_once_per_frame_period() -> None:
    clock = PlaybackClock(period_s=0.02, slots=10)
    loop = asyncio.get_running_loop()
    slot = clock.next_slot()
    times = []
    for _ in range(6):
        await clock.tick(slot)
        times.append(loop.time())
    # Never early, and drift-free: a late tick is caught up, five periods stay five periods.
    assert all(t - times[0] >= i * 0.02 - 0.002 for i, t in enumerate(times)), times
    assert times[-1] - times[0] <= 0.3
    clock.close()


async def test_calls_joining_later_take_the_next_phase_and_do_not_wait_a_frame() -> None:
    clock = PlaybackClock(period_s=0.02, slots=10)
    loop = asyncio.get_running_loop()
    first = clock.next_slot()
    await clock.tick(first)
    await asyncio.sleep(0.005)
    second = clock.next_slot()
    assert second != first
    began = loop.time()
    await clock.tick(second)
    assert loop.time() - began < 0.01  # its phase comes within one slot, not one frame
    clock.close()


async def test_one_cancelled_waiter_does_not_disturb_the_others() -> None:
    clock = PlaybackClock(period_s=0.02, slots=10)
    slot = clock.next_slot()
    cancelled = asyncio.ensure_future(clock.tick(slot))
    kept = clock.tick(slot)
    cancelled.cancel()
    await asyncio.wait_for(kept, 1.0)
    assert kept.done()
    assert not kept.cancelled()
    clock.close()


async def test_the_clock_stops_when_nobody_waits() -> None:
    clock = PlaybackClock(period_s=0.02, slots=10)
    await clock.tick(clock.next_slot())
    await asyncio.sleep(0.06)
    assert clock._timer is None
    await asyncio.wait_for(clock.tick(clock.next_slot()), 1.0)  # and starts again on demand
    clock.close()


async def test_watchdog_checks_deadlines_until_items_leave() -> None:
    seen: list[float] = []

    class Item:
        def check_deadlines(self, now: float) -> None:
            seen.append(now)

    watchdog = Watchdog(interval_s=0.01)
    item = Item()
    watchdog.add(item)
    await asyncio.sleep(0.06)
    assert len(seen) >= 2
    watchdog.discard(item)
    await asyncio.sleep(0.03)
    count = len(seen)
    await asyncio.sleep(0.03)
    assert len(seen) == count
    await watchdog.close()
