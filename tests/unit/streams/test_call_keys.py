"""CallKeys: the clock ticks live calls only, forgets ended ones after a while, and rescans rarely."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.calls.call_keys import RESCAN_EVERY_TICKS, RESCAN_TICKS_AFTER_REBALANCE, CallKeys, Entry

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Table:
    """What a full scan would find, and how often it was asked."""

    def __init__(self, *live: bytes) -> None:
        self.live = set(live)
        self.ended: dict[bytes, datetime] = {}
        self.scans = 0

    def scan(self) -> list[Entry]:
        self.scans += 1
        return [(key, None) for key in sorted(self.live)] + sorted(self.ended.items())


def _settle(keys: CallKeys, table: Table) -> None:
    for _ in range(RESCAN_TICKS_AFTER_REBALANCE):
        keys.to_tick(table.scan)


def test_start_up_rescans_while_recovery_fills_the_table_then_stops() -> None:
    keys, table = CallKeys(), Table()
    assert keys.to_tick(table.scan) == []
    table.live.add(b"recovered")  # the changelog recovery wrote it, not our agent
    assert keys.to_tick(table.scan) == [b"recovered"]
    _settle(keys, table)
    scans = table.scans
    keys.to_tick(table.scan)
    assert table.scans == scans  # settled: no more scans on an ordinary tick


def test_the_agent_keeps_the_list_current_without_scans() -> None:
    keys, table = CallKeys(), Table()
    _settle(keys, table)
    keys.stored(b"a", None)
    keys.stored(b"b", None)
    assert keys.to_tick(table.scan) == [b"a", b"b"]
    keys.stored(b"a", T0)  # it ended
    assert keys.to_tick(table.scan) == [b"b"]


def test_a_rebalance_rescans_for_a_while() -> None:
    keys, table = CallKeys(), Table()
    _settle(keys, table)
    keys.stored(b"moved-away", None)
    keys.stored(b"ended-moved-away", T0)
    keys.rebalanced()
    table.live = {b"moved-here"}
    assert keys.to_tick(table.scan) == [b"moved-here"]
    assert keys.to_forget(T0 + 2 * HOUR, HOUR) == []  # not ours any more


def test_a_periodic_rescan_repairs_a_missed_update() -> None:
    keys, table = CallKeys(), Table(b"missed")
    _settle(keys, table)
    keys.stored(b"missed", T0)  # wrongly taken for ended
    ticks = 0
    while b"missed" not in keys.to_tick(table.scan):
        ticks += 1
        assert ticks <= RESCAN_EVERY_TICKS


def test_ended_calls_are_forgotten_after_the_retention_once() -> None:
    keys, table = CallKeys(), Table()
    _settle(keys, table)
    keys.stored(b"early", T0)
    keys.stored(b"late", T0 + timedelta(minutes=30))
    assert keys.to_forget(T0 + HOUR - timedelta(seconds=1), HOUR) == []
    assert keys.to_forget(T0 + HOUR, HOUR) == [b"early"]
    assert keys.to_forget(T0 + HOUR, HOUR) == []  # handed out once
    keys.forgotten(b"early")
    assert keys.to_forget(T0 + 2 * HOUR, HOUR) == [b"late"]


def test_a_forget_in_flight_is_not_handed_out_again_by_rescans() -> None:
    keys, table = CallKeys(), Table()
    table.ended[b"old"] = T0
    _settle(keys, table)
    assert keys.to_forget(T0 + HOUR, HOUR) == [b"old"]  # its tick is on its way to the agent
    for _ in range(RESCAN_EVERY_TICKS):
        keys.to_tick(table.scan)  # still in the table: the agent has not processed the tick
    assert keys.to_forget(T0 + HOUR, HOUR) == []
    keys.forgotten(b"old")
    del table.ended[b"old"]
    assert keys.to_forget(T0 + 2 * HOUR, HOUR) == []


def test_a_forget_lost_with_a_partition_is_sent_again_after_the_rebalance() -> None:
    keys, table = CallKeys(), Table()
    table.ended[b"old"] = T0
    _settle(keys, table)
    assert keys.to_forget(T0 + HOUR, HOUR) == [b"old"]
    keys.rebalanced()
    keys.to_tick(table.scan)
    assert keys.to_forget(T0 + HOUR, HOUR) == [b"old"]


def test_forgets_are_sent_a_bounded_number_per_tick() -> None:
    keys, table = CallKeys(), Table()
    table.ended = {f"call-{n:04d}".encode(): T0 for n in range(250)}
    _settle(keys, table)
    batches = [keys.to_forget(T0 + HOUR, HOUR, limit=100) for _ in range(3)]
    assert [len(b) for b in batches] == [100, 100, 50]
    assert len({key for batch in batches for key in batch}) == 250


def test_a_call_stored_live_again_is_not_forgotten() -> None:
    keys, table = CallKeys(), Table()
    _settle(keys, table)
    keys.stored(b"k", T0)
    keys.stored(b"k", None)
    assert keys.to_forget(T0 + 2 * HOUR, HOUR) == []
    assert keys.to_tick(table.scan) == [b"k"]
