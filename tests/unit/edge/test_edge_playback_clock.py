"""The shared playback clock and the deadline watchdog (timing shells of the edge)."""

from __future__ import annotations

import asyncio

from edge.playback_clock import PlaybackClock
from edge.watchdog import Watchdog


class Player:
    """Records when the clock called it; stays for ``ticks`` calls."""

    def __init__(self, ticks: int = 1_000_000) -> None:
        self.times: list[float] = []
        self.ticks = ticks

    def on_tick(self, now: float) -> bool:
        self.times.append(asyncio.get_running_loop().time())
        return len(self.times) < self.ticks

    async def called(self, times: int = 1, within: float = 1.0) -> None:
        async def wait() -> None:
            while len(self.times) < times:  # noqa: ASYNC110 - the clock's timer appends
                await asyncio.sleep(0.001)

        await asyncio.wait_for(wait(), within)


async def test_a_slot_fires_once_per_frame_period() -> None:
    clock = PlaybackClock(period_s=0.02, slots=10)
    player = Player(ticks=6)
    clock.join(clock.next_slot(), player)
    await player.called(6)
    times = player.times
    # Never early, and drift-free: a late tick is caught up, five periods stay five periods.
    assert all(t - times[0] >= i * 0.02 - 0.002 for i, t in enumerate(times)), times
    assert times[-1] - times[0] <= 0.3
    await asyncio.sleep(0.05)
    assert len(player.times) == 6  # it left the clock when it said so
    clock.close()


async def test_calls_joining_later_take_the_next_phase_and_do_not_wait_a_frame() -> None:
    clock = PlaybackClock(period_s=0.02, slots=10)
    loop = asyncio.get_running_loop()
    first_slot, first = clock.next_slot(), Player()
    clock.join(first_slot, first)
    await first.called()
    await asyncio.sleep(0.005)
    second_slot, second = clock.next_slot(), Player()
    assert second_slot != first_slot
    began = loop.time()
    clock.join(second_slot, second)
    await second.called()
    assert second.times[0] - began < 0.01  # its phase comes within one slot, not one frame
    clock.close()


async def test_a_player_that_fails_leaves_the_clock_and_the_others_play_on() -> None:
    clock = PlaybackClock(period_s=0.02, slots=10)

    class Failing:
        calls = 0

        def on_tick(self, now: float) -> bool:
            self.calls += 1
            raise RuntimeError("a bug in one call")

    failing, kept = Failing(), Player()
    slot = clock.next_slot()
    clock.join(slot, failing)
    clock.join(slot, kept)
    await kept.called(3)
    assert failing.calls == 1
    clock.close()


async def test_the_clock_stops_when_nobody_plays() -> None:
    clock = PlaybackClock(period_s=0.02, slots=10)
    player = Player(ticks=1)
    clock.join(clock.next_slot(), player)
    await player.called()
    await asyncio.sleep(0.06)
    assert clock._timer is None
    again = Player(ticks=1)
    clock.join(clock.next_slot(), again)  # and it starts again on demand
    await again.called()
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
