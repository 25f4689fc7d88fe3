"""LiveCallKeys: the clock ticks live calls only, and rescans the table only when it must."""

from __future__ import annotations

from streams.calls.live_keys import RESCAN_EVERY_TICKS, RESCAN_TICKS_AFTER_REBALANCE, LiveCallKeys


class Table:
    """The live keys a full scan would find, and how often it was asked."""

    def __init__(self, *live: bytes) -> None:
        self.live = set(live)
        self.scans = 0

    def scan(self) -> list[bytes]:
        self.scans += 1
        return sorted(self.live)


def _settle(keys: LiveCallKeys, table: Table) -> None:
    for _ in range(RESCAN_TICKS_AFTER_REBALANCE):
        keys.to_tick(table.scan)


def test_start_up_rescans_while_recovery_fills_the_table_then_stops() -> None:
    keys, table = LiveCallKeys(), Table()
    assert keys.to_tick(table.scan) == []
    table.live.add(b"recovered")  # the changelog recovery wrote it, not our agent
    assert keys.to_tick(table.scan) == [b"recovered"]
    _settle(keys, table)
    scans = table.scans
    keys.to_tick(table.scan)
    assert table.scans == scans  # settled: no more scans on an ordinary tick


def test_the_agent_keeps_the_list_current_without_scans() -> None:
    keys, table = LiveCallKeys(), Table()
    _settle(keys, table)
    keys.stored(b"a", live=True)
    keys.stored(b"b", live=True)
    assert keys.to_tick(table.scan) == [b"a", b"b"]
    keys.stored(b"a", live=False)  # it ended
    assert keys.to_tick(table.scan) == [b"b"]


def test_a_rebalance_rescans_for_a_while() -> None:
    keys, table = LiveCallKeys(), Table()
    _settle(keys, table)
    keys.stored(b"moved-away", live=True)
    keys.rebalanced()
    table.live = {b"moved-here"}
    assert keys.to_tick(table.scan) == [b"moved-here"]


def test_a_periodic_rescan_repairs_a_missed_update() -> None:
    keys, table = LiveCallKeys(), Table(b"missed")
    _settle(keys, table)
    keys.stored(b"missed", live=False)  # wrongly dropped
    ticks = 0
    while b"missed" not in keys.to_tick(table.scan):
        ticks += 1
        assert ticks <= RESCAN_EVERY_TICKS
