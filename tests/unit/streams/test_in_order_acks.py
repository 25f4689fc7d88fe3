"""InOrderAcks: an input is released for acking only when every earlier one of its partition is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.calls.in_order import InOrderAcks


def test_a_later_input_finishing_first_waits_for_the_earlier_one() -> None:
    acks: InOrderAcks[int] = InOrderAcks()
    first, second = acks.taken("p0", 100), acks.taken("p0", 101)
    assert acks.done(second) == []  # acking 101 now could let Faust commit past 100
    assert acks.done(first) == [100, 101]
    assert acks.waiting("p0") == 0


def test_partitions_do_not_wait_for_each_other() -> None:
    acks: InOrderAcks[str] = InOrderAcks()
    slow = acks.taken("p0", "p0@7")
    fast = acks.taken("p1", "p1@3")
    assert acks.done(fast) == ["p1@3"]
    assert acks.waiting("p0") == 1
    assert acks.done(slow) == ["p0@7"]


@given(st.data(), st.integers(min_value=1, max_value=40))
def test_whatever_the_finishing_order_each_partition_is_released_in_read_order(
    data: st.DataObject, count: int
) -> None:
    acks: InOrderAcks[tuple[int, int]] = InOrderAcks()
    partitions = data.draw(st.lists(st.integers(0, 2), min_size=count, max_size=count))
    tickets = [acks.taken(p, (p, offset)) for offset, p in enumerate(partitions)]
    order = data.draw(st.permutations(range(count)))
    released: list[tuple[int, int]] = []
    for index in order:
        released += acks.done(tickets[index])
    assert sorted(released) == sorted((p, offset) for offset, p in enumerate(partitions))
    for partition in set(partitions):
        offsets = [offset for p, offset in released if p == partition]
        assert offsets == sorted(offsets)
    # Never released before every earlier input of its partition was done:
    finished: set[int] = set()
    acks2: InOrderAcks[int] = InOrderAcks()
    tickets2 = [acks2.taken(p, offset) for offset, p in enumerate(partitions)]
    for index in order:
        finished.add(index)
        for offset in acks2.done(tickets2[index]):
            earlier = [o for o, p in enumerate(partitions) if p == partitions[offset] and o < offset]
            assert set(earlier) <= finished
