"""Which tables a replay rebuilds, verifies and swaps, from the tables each projection says it writes.

Every replayable projection declares ``tables``: all the tables it writes rows of, besides the
``projection_checkpoint`` and ``aggregate_position`` rows every projection keeps under its own
name. A table only one projection writes is that projection's; a table several write (as
``command_result``: agents, knowledge and campaigns record command outcomes there) moves in a
swap only when all its writers are swapped, since moving it would otherwise drop the rows of
those left out (see docs/adr/0007).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Protocol, runtime_checkable

from projections.service import PROJECTIONS, ServiceOptions, build_projections

BOOKKEEPING = ("aggregate_position", "projection_checkpoint")


@runtime_checkable
class WritesTables(Protocol):
    """A projection that names the tables it writes; only those can be replayed and swapped."""

    @property
    def tables(self) -> tuple[str, ...]: ...


@cache
def written_tables() -> Mapping[str, tuple[str, ...]]:
    """The tables each replayable projection writes, in service order."""
    written = {}
    for name in PROJECTIONS:
        (projection,) = build_projections(ServiceOptions(only=(name,)))
        if isinstance(projection, WritesTables):
            written[name] = tuple(projection.tables)
    return written


def tables_of(
    projections: tuple[str, ...], written: Mapping[str, tuple[str, ...]] | None = None
) -> list[str]:
    """Every table the projections write, each once, in their order."""
    written = written_tables() if written is None else written
    return list(dict.fromkeys(t for p in projections for t in written[p]))


@dataclass(frozen=True, slots=True)
class SwapTables:
    """What a swap does with each table of the swapped projections."""

    moved: tuple[str, ...]
    """Tables only swapped projections write: the rebuilt table replaces the live one."""
    merged: Mapping[str, tuple[str, ...]]
    """Tables other projections write too (with their names): the rebuilt rows join the live ones."""


def swap_tables(
    projections: tuple[str, ...], written: Mapping[str, tuple[str, ...]] | None = None
) -> SwapTables:
    """Move a table when every projection writing it is swapped; otherwise merge into it."""
    written = written_tables() if written is None else written
    moved, merged = [], {}
    for table in tables_of(projections, written):
        others = tuple(p for p, tables in written.items() if table in tables and p not in projections)
        if others:
            merged[table] = others
        else:
            moved.append(table)
    return SwapTables(tuple(moved), merged)
