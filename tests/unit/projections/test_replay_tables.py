"""Which tables a replay swaps: a table several projections write moves only with all of them."""

from __future__ import annotations

from infra.deadletter import RecordDecodeError
from projections.rebuild import resolve_names
from projections.replay_tables import swap_tables, tables_of, written_tables
from projections.verification import Undecodable


def test_command_result_moves_only_when_every_projection_recording_outcomes_is_swapped() -> None:
    writers = {name for name, tables in written_tables().items() if "command_result" in tables}
    assert writers == {"agents", "knowledge", "campaigns"}  # the dialer's refused PlaceCalls too

    partial = swap_tables(("agents", "knowledge"))
    assert "command_result" not in partial.moved
    assert partial.merged == {"command_result": ("campaigns",)}
    assert set(partial.moved) == {"agent", "agent_version", "knowledge_base", "document", "chunk"}

    whole = swap_tables(("agents", "knowledge", "campaigns"))
    assert "command_result" in whole.moved
    assert whole.merged == {}


def test_tables_one_projection_writes_always_move_with_it() -> None:
    assert swap_tables(("calls",)).merged == {}
    assert set(swap_tables(("calls",)).moved) == {
        "call",
        "call_event",
        "transcript_segment",
        "tool_call",
        "recording",
        "analytics_daily",
    }


def test_the_declared_tables_decide_what_moves() -> None:
    written = {"a": ("x", "shared"), "b": ("y", "shared"), "c": ("z",)}
    assert swap_tables(("a",), written).merged == {"shared": ("b",)}
    assert swap_tables(("a", "b"), written).moved == ("x", "shared", "y")
    assert tables_of(("a", "b"), written) == ["x", "shared", "y"]


def test_every_projection_of_the_service_is_replayable() -> None:
    assert resolve_names(["all"]) == ("agents", "knowledge", "calls", "campaigns", "summaries")


def test_undecodable_records_keep_the_first_few_places_and_count_the_rest() -> None:
    seen = Undecodable()
    for offset in range(7):
        seen.add(RecordDecodeError("t", 0, offset, "unknown fingerprint"))
    other = Undecodable()
    other.add(RecordDecodeError("t", 1, 3, "truncated"))
    seen.merge(other)
    assert seen.count == 8
    assert seen.describe() == (
        "t[0]@0: unknown fingerprint; t[0]@1: unknown fingerprint; t[0]@2: unknown fingerprint; "
        "t[0]@3: unknown fingerprint; t[0]@4: unknown fingerprint; and 3 more"
    )
