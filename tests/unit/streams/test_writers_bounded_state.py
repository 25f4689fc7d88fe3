"""The writers' stored state is bounded (ADR 26): a window of recent correlation ids, removed
documents forgotten, at most MAX_DOCUMENTS per knowledge base, and a last-resort size check that
refuses a command before it emits instead of crashing the producer on the table write."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from schemas.codec import Codec
from schemas.ids import AgentId, CorrelationId, DocumentId, EventId, KnowledgeBaseId, TenantId
from schemas.knowledge import (
    AddDocument,
    ChunksIndexed,
    CreateKnowledgeBase,
    DocumentAdded,
    KnowledgeCommandRejected,
    RemoveDocument,
)
from streams.writers import agent_writer, knowledge_writer, shell, state_codec
from streams.writers.knowledge_writer import MAX_DOCUMENTS, DocumentState, DocumentText, KnowledgeState
from streams.writers.recent import RECENT_COMMANDS, remember
from streams.writers.shell import MAX_STATE_BYTES, CommandHandler, StateTooLargeError
from streams.writers.spec import knowledge_spec

CODEC = Codec.single_object()
NOW = datetime(2026, 11, 27, tzinfo=UTC)
KB = KnowledgeBaseId("kb_1")
TENANT = TenantId("t1")
TEXT = DocumentText(text="Opening hours are nine to five. " * 4)


def api_id(prefix: str) -> str:
    """An id as the API makes them (``api.commands.new_id``): 36 characters."""
    return f"{prefix}_{uuid.uuid4().hex}"


def env(correlation: str) -> dict[str, Any]:
    return {
        "tenant_id": TENANT,
        "kb_id": KB,
        "seq": 0,
        "event_id": EventId(f"cmd-{correlation}"),
        "occurred_at": NOW,
        "correlation_id": CorrelationId(correlation),
    }


def add(document_id: str, correlation: str) -> AddDocument:
    return AddDocument(
        **env(correlation),
        document_id=DocumentId(document_id),
        title="hours",
        content_type="text/plain",
        content=TEXT.text,
        content_uri=None,
        size_bytes=128,
    )


def remove(document_id: str, correlation: str) -> RemoveDocument:
    return RemoveDocument(**env(correlation), document_id=DocumentId(document_id))


def created() -> KnowledgeState:
    state = knowledge_writer.initial_state(KB)
    create = CreateKnowledgeBase(**env(api_id("cmd")), name="faq")
    return knowledge_writer.fold(state, knowledge_writer.decide(state, create))


def with_documents(count: int, id_chars: int = 36) -> KnowledgeState:
    """A created base holding ``count`` documents, as if added one by one (seq included)."""
    documents = {
        f"doc_{i:0{id_chars - 4}x}": DocumentState(f"cmd_{i:0{id_chars - 4}x}", 1000 + i % 9000)
        for i in range(count)
    }
    base = created()
    return replace(base, seq=base.seq + 2 * count, documents=MappingProxyType(documents))


def run(state: KnowledgeState, command: Any) -> tuple[KnowledgeState, list[Any]]:
    events = knowledge_writer.decide(state, command, TEXT if isinstance(command, AddDocument) else None)
    return knowledge_writer.fold(state, events), events


def test_a_knowledge_base_at_the_limit_rejects_another_document_with_the_reason() -> None:
    full = with_documents(MAX_DOCUMENTS)
    state, events = run(full, add(api_id("doc"), "k-over"))
    [rejected] = events
    assert isinstance(rejected, KnowledgeCommandRejected)
    assert (rejected.code, rejected.seq, rejected.correlation_id) == ("invalid", full.seq + 1, "k-over")
    assert f"the most it may hold is {MAX_DOCUMENTS}" in rejected.reason
    assert "remove one" in rejected.reason
    assert len(state.documents) == MAX_DOCUMENTS
    # Removing one makes room again; the one just below the limit is accepted.
    state, events = run(state, remove(next(iter(state.documents)), "k-remove"))
    assert [type(e).__name__ for e in events] == ["DocumentRemoved"]
    state, events = run(state, add(api_id("doc"), "k-fits"))
    assert isinstance(events[0], DocumentAdded)
    assert len(state.documents) == MAX_DOCUMENTS


def test_a_full_knowledge_base_still_resumes_a_document_a_crash_cut_short() -> None:
    """A re-delivered AddDocument whose document is in the state is no new document."""
    base = with_documents(MAX_DOCUMENTS - 1)
    command = add(api_id("doc"), "k-last")
    events = knowledge_writer.decide(base, command, TEXT)
    assert isinstance(events[0], DocumentAdded)
    cut_short = knowledge_writer.fold(base, events[:1])  # the crash came before the chunks
    assert len(cut_short.documents) == MAX_DOCUMENTS
    resumed = knowledge_writer.decide(cut_short, command, TEXT)
    assert resumed == events[1:]
    assert all(isinstance(e, ChunksIndexed) for e in resumed)


def test_the_state_stays_bounded_through_adding_and_removing_documents() -> None:
    """Before the window, every correlation id ever handled stayed: ~121 bytes a document, until
    the table write was over the producer's 1,000,000 bytes and crashed the worker."""
    state = with_documents(MAX_DOCUMENTS - 1)
    sizes = []
    for cycle in range(1, 1201):
        document = api_id("doc")
        state, _ = run(state, add(document, api_id("cmd")))
        state, _ = run(state, remove(document, api_id("cmd")))
        if cycle in (1100, 1200):
            sizes.append(len(state_codec.dump_knowledge(state)))
    assert len(state.handled) == RECENT_COMMANDS
    assert len(state.documents) == MAX_DOCUMENTS - 1  # the removed ones are forgotten
    assert sizes[1] - sizes[0] < 10  # a longer seq, nothing more


def test_the_fullest_state_is_far_below_the_table_record_limit() -> None:
    """MAX_DOCUMENTS documents and a full window: under half the limit with the API's ids, and
    under the limit with ids of 70 characters."""
    for id_chars, bound in ((36, MAX_STATE_BYTES // 1.9), (70, MAX_STATE_BYTES)):
        state = with_documents(MAX_DOCUMENTS, id_chars)
        window = tuple(f"cmd_{i:0{id_chars - 4}x}" for i in range(RECENT_COMMANDS))
        assert len(state_codec.dump_knowledge(replace(state, handled=window))) < bound


def test_a_redelivered_command_within_the_window_decides_nothing_and_the_window_keeps_order() -> None:
    state = created()
    first = add(api_id("doc"), "k-first")
    state, _ = run(state, first)
    state, _ = run(state, remove(first.document_id, "k-first-removed"))
    for _ in range(RECENT_COMMANDS - 3):  # the creation, the add and the removal are in the window
        state, _ = run(state, remove("missing", api_id("cmd")))
    assert state.handled[1:3] == ("k-first", "k-first-removed")
    assert knowledge_writer.decide(state, first, TEXT) == []  # not added again
    state, _ = run(state, remove("missing", api_id("cmd")))
    assert "k-first" in state.handled
    assert len(state.handled) == RECENT_COMMANDS
    assert state_codec.load_knowledge(state_codec.dump_knowledge(state)) == state


def test_the_agent_window_is_bounded_too() -> None:
    recent: tuple[str, ...] = ()
    for i in range(RECENT_COMMANDS + 500):
        recent = remember(recent, f"c{i}")
        recent = remember(recent, f"c{i}")  # a command's second event
    assert recent == tuple(f"c{i}" for i in range(500, RECENT_COMMANDS + 500))
    agent = agent_writer.AgentState(agent_id=AgentId("agt_1"), tenant_id=TENANT, seq=7, handled=recent)
    assert state_codec.load_agent(state_codec.dump_agent(agent)) == agent


def v1_knowledge(state: KnowledgeState, handled: set[str]) -> bytes:
    """A state as the writers stored it before ADR 26 (every id ever handled, sorted)."""
    return json.dumps(
        {
            "v": 1,
            "kb_id": state.kb_id,
            "tenant_id": state.tenant_id,
            "seq": state.seq,
            "documents": {d: [doc.correlation_id, doc.chunks_indexed] for d, doc in state.documents.items()},
            "handled": sorted(handled),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


class Log:
    """A fake knowledge events topic."""

    def __init__(self, events: list[Any]) -> None:
        self.events = list(events)
        self.emitted: list[Any] = []

    async def history(self, aggregate: str) -> list[Any]:
        return [e for e in self.events if e.kb_id == aggregate]

    async def emit(self, key: bytes, value: bytes) -> None:
        event = CODEC.decode(value)
        self.emitted.append(event)
        self.events.append(event)


async def test_a_state_stored_before_the_window_is_rebuilt_from_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The crash loop's case: a version 1 state, and the log holding the events of the command
    whose table write crashed. The re-delivered command is decided on the log's state (where it
    is already done), not rejected on the stored one for a limit it was decided without."""
    spec = knowledge_spec(Path("/nonexistent"))
    state = knowledge_writer.initial_state(KB)
    history: list[Any] = []
    commands = [
        CreateKnowledgeBase(**env("k0"), name="faq"),
        add("d1", "k1"),
        add("d2", "k2"),
        add("d3", "k3"),
    ]
    for command in commands:
        events = spec.decide(state, command)
        history += events
        state = knowledge_writer.fold(state, events)
    before_crash = knowledge_writer.fold(knowledge_writer.initial_state(KB), history[: -len(events)])
    stored = v1_knowledge(before_crash, {"k0", "k1", "k2"})
    assert state_codec.load_knowledge(stored) is None  # the log is to rebuild it

    monkeypatch.setattr(knowledge_writer, "MAX_DOCUMENTS", 2)  # d3 was added over today's limit
    log = Log(history)
    handler = CommandHandler(spec, CODEC, log.history)
    again = await handler.handle(stored, commands[-1], log.emit)
    assert log.emitted == []  # done already: nothing rejected, no seq taken twice
    assert again is not None
    assert json.loads(again)["v"] == 2
    assert state_codec.load_knowledge(again) == state
    # The next command goes on from the log's seq, and the limit applies to it.
    await handler.handle(again, add("d4", "k4"), log.emit)
    [rejected] = log.emitted
    assert isinstance(rejected, KnowledgeCommandRejected)
    assert (rejected.seq, rejected.code) == (state.seq + 1, "invalid")


async def test_the_shell_refuses_a_command_whose_state_would_be_too_large_before_emitting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = knowledge_spec(Path("/nonexistent"))
    state = created()
    log = Log([])
    handler = CommandHandler(spec, CODEC, log.history)
    stored = state_codec.dump_knowledge(state)
    monkeypatch.setattr(shell, "MAX_STATE_BYTES", len(stored) + 10)
    calls: list[str] = []
    with pytest.raises(StateTooLargeError, match=r"over the \d+ a table record may hold"):
        await handler.handle(stored, add("d1", "k1"), log.emit, calls.append)
    assert (log.emitted, calls) == ([], [])
    # A command that leaves the state as small as it was still goes through.
    assert await handler.handle(stored, remove("missing", "k2"), log.emit) is not None
    assert [type(e) for e in log.emitted] == [KnowledgeCommandRejected]
