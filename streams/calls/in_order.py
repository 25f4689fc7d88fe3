"""Acks released in the order inputs were read, per partition, however their jobs finish."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Ticket(Generic[T]):
    """One input taken from a partition, waiting for its job to finish."""

    __slots__ = ("done", "item", "partition")

    def __init__(self, partition: Hashable, item: T) -> None:
        self.partition = partition
        self.item = item
        self.done = False


class InOrderAcks(Generic[T]):
    """Hands back finished inputs only once every earlier input of their partition finished.

    Different calls' inputs finish out of order, and Faust commits a partition's offset past
    the highest acked input it sees, assuming acks come in order: acking input 101 while input
    100 is still being applied could commit 102, and a crash would then never read 100 again.
    So an input is acked only when everything read before it from its partition is done.
    """

    def __init__(self) -> None:
        self._waiting: dict[Hashable, deque[Ticket[T]]] = {}

    def taken(self, partition: Hashable, item: T) -> Ticket[T]:
        """Record an input read from `partition`, in read order."""
        ticket = Ticket(partition, item)
        self._waiting.setdefault(partition, deque()).append(ticket)
        return ticket

    def done(self, ticket: Ticket[T]) -> list[T]:
        """Mark the ticket's job finished; return the inputs that may now be acked, in order."""
        ticket.done = True
        waiting = self._waiting.get(ticket.partition)
        released: list[T] = []
        while waiting and waiting[0].done:
            released.append(waiting.popleft().item)
        if waiting is not None and not waiting:
            del self._waiting[ticket.partition]
        return released

    def waiting(self, partition: Hashable) -> int:
        """Inputs of `partition` read and not yet released."""
        return len(self._waiting.get(partition, ()))
