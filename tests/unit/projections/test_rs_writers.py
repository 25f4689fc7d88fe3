"""The agent and knowledge deciders: given events, when a command, then events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from schemas.agents import (
    AgentCommandRejected,
    AgentConfig,
    AgentCreated,
    AgentVersionPublished,
    CreateAgent,
    PublishAgentVersion,
)
from schemas.codec import Codec
from schemas.ids import AgentId, CorrelationId, DocumentId, EventId, KnowledgeBaseId, TenantId
from schemas.knowledge import (
    AddDocument,
    ChunksIndexed,
    CreateKnowledgeBase,
    DocumentAdded,
    KnowledgeCommandRejected,
)
from streams.writers import agent_writer, knowledge_writer
from streams.writers.chunker import chunk_text

NOW = datetime(2026, 11, 26, tzinfo=UTC)
MAX_RECORD_BYTES = 1_048_576  # the producer's and the broker's default limit on one record
AGENT = AgentId("agt_1")
CONFIG = AgentConfig(
    system_prompt="Hi",
    voice="Puck",
    language="en-US",
    model="m",
    max_duration_s=60,
    silence_timeout_s=10,
    record_calls=False,
    max_concurrent_calls=1,
    answering_machine_policy="hang_up",
    timezone="UTC",
)


def env(correlation: str, tenant: str = "t1") -> dict[str, object]:
    return {
        "tenant_id": TenantId(tenant),
        "seq": 0,
        "event_id": EventId(correlation),
        "occurred_at": NOW,
        "correlation_id": CorrelationId(correlation),
    }


def created_agent() -> agent_writer.AgentState:
    state = agent_writer.initial_state(AGENT)
    events = agent_writer.decide(state, CreateAgent(**env("c1"), agent_id=AGENT, name="A", created_by="k"))  # type: ignore[arg-type]
    assert [type(e) for e in events] == [AgentCreated]
    return agent_writer.fold(state, events)


def test_rs_publish_with_the_expected_version_creates_the_next_version() -> None:
    state = created_agent()
    [event] = agent_writer.decide(
        state, PublishAgentVersion(**env("c2"), agent_id=AGENT, expected_version=0, config=CONFIG)
    )  # type: ignore[arg-type]
    assert isinstance(event, AgentVersionPublished)
    assert (event.version, event.seq) == (1, 2)


def test_rs_a_stale_expected_version_is_rejected_and_recorded() -> None:
    state = created_agent()
    [event] = agent_writer.decide(
        state, PublishAgentVersion(**env("c2"), agent_id=AGENT, expected_version=3, config=CONFIG)
    )  # type: ignore[arg-type]
    assert isinstance(event, AgentCommandRejected)
    assert event.code == "version_conflict"


def test_rs_a_redelivered_command_emits_nothing_and_decisions_are_deterministic() -> None:
    state = created_agent()
    command = PublishAgentVersion(**env("c2"), agent_id=AGENT, expected_version=0, config=CONFIG)  # type: ignore[arg-type]
    first = agent_writer.decide(state, command)
    assert first == agent_writer.decide(state, command)
    assert agent_writer.decide(agent_writer.fold(state, first), command) == []


def test_rs_another_tenant_cannot_touch_the_agent() -> None:
    state = created_agent()
    [event] = agent_writer.decide(
        state,
        PublishAgentVersion(**env("c9", tenant="t2"), agent_id=AGENT, expected_version=0, config=CONFIG),  # type: ignore[arg-type]
    )
    assert isinstance(event, AgentCommandRejected)
    assert event.code == "not_found"


KB = KnowledgeBaseId("kb_1")


def test_rs_documents_become_chunk_batches_and_a_crash_resumes_the_rest() -> None:
    state = knowledge_writer.initial_state(KB)
    state = knowledge_writer.fold(
        state, knowledge_writer.decide(state, CreateKnowledgeBase(**env("k1"), kb_id=KB, name="kb"))
    )  # type: ignore[arg-type, attr-defined]
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 200 for i in range(1500))
    add = AddDocument(
        **env("k2"),
        kb_id=KB,
        document_id=DocumentId("d1"),
        title="T",
        content_type="text/plain",
        size_bytes=len(text),
    )  # type: ignore[arg-type]
    events = knowledge_writer.decide(state, add, knowledge_writer.DocumentText(text=text))
    assert isinstance(events[0], DocumentAdded)
    batches = [e for e in events if isinstance(e, ChunksIndexed)]
    assert len(batches) > 1
    assert all(
        sum(knowledge_writer.encoded_size(c) for c in b.chunks) <= knowledge_writer.MAX_BATCH_BYTES
        for b in batches
    )
    crashed = knowledge_writer.fold(state, events[:2])
    rest = knowledge_writer.decide(crashed, add, knowledge_writer.DocumentText(text=text))
    resumed = [c.ordinal for b in [*batches[:1], *rest] for c in b.chunks]  # type: ignore[attr-defined]
    assert resumed == list(range(len(resumed)))
    assert resumed[-1] == batches[-1].chunks[-1].ordinal


def test_rs_every_chunk_batch_of_a_multibyte_document_fits_in_one_kafka_record() -> None:
    # 1.6 MB of four-byte characters: batched by characters, one event encoded at 1,063,855 bytes.
    kb = KnowledgeBaseId("kb_" + "a" * 32)
    state = knowledge_writer.initial_state(kb)
    state = knowledge_writer.fold(
        state, knowledge_writer.decide(state, CreateKnowledgeBase(**env("k1"), kb_id=kb, name="kb"))
    )  # type: ignore[arg-type, attr-defined]
    text = "\N{GRINNING FACE}" * 400_000
    add = AddDocument(
        **env("k2"),
        kb_id=kb,
        document_id=DocumentId("doc_" + "b" * 32),
        title="T",
        content_type="text/plain",
        size_bytes=len(text.encode()),
    )  # type: ignore[arg-type]
    batches = [
        e
        for e in knowledge_writer.decide(state, add, knowledge_writer.DocumentText(text=text))
        if isinstance(e, ChunksIndexed)
    ]
    codec = Codec.single_object()
    assert [len(codec.encode(b)) for b in batches if len(codec.encode(b)) >= MAX_RECORD_BYTES] == []
    every_chunk = range(len(knowledge_writer.chunks_of(add, text)))
    assert [c.ordinal for b in batches for c in b.chunks] == list(every_chunk)


def test_rs_an_unreadable_document_is_rejected() -> None:
    state = knowledge_writer.initial_state(KB)
    create = CreateKnowledgeBase(**env("k1"), kb_id=KB, name="kb")  # type: ignore[arg-type]
    state = knowledge_writer.fold(state, knowledge_writer.decide(state, create))
    add = AddDocument(
        **env("k2"),
        kb_id=KB,
        document_id=DocumentId("d1"),
        title="T",
        content_type="text/plain",
        size_bytes=1,
    )  # type: ignore[arg-type]
    [event] = knowledge_writer.decide(state, add, knowledge_writer.DocumentText(error="x"))
    assert isinstance(event, KnowledgeCommandRejected)
    assert event.code == "unreadable"


def test_rs_chunks_are_bounded_and_overlap() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(300))
    chunks = chunk_text(text, max_chars=300, overlap_chars=50)
    assert all(len(c) <= 300 for c in chunks)
    assert len(chunks) > 10
    for before, after in itertools.pairwise(chunks):
        # Each chunk starts with the end of the one before (at most the overlap), then goes on.
        shared = next(n for n in range(min(len(before), 50), 0, -1) if before.endswith(after[:n]))
        assert shared >= 10, (before[-60:], after[:60])
    # Nothing is lost: every sentence's number appears in some chunk.
    assert all(any(f"number {i} is" in c for c in chunks) for i in range(300))


def test_chinese_and_japanese_text_is_cut_at_its_sentence_ends() -> None:
    sentence = "当店の返金ポリシーについてご説明いたします。"  # 22 characters, no spaces
    chunks = chunk_text(sentence * 30, max_chars=200, overlap_chars=30)
    assert len(chunks) > 3
    assert all(len(c) <= 200 for c in chunks)
    # Every chunk ends on a sentence end, where a cut at the size limit would split a word.
    assert all(c.endswith("。") for c in chunks)


def test_chinese_and_japanese_sentences_are_joined_as_written_without_spaces() -> None:
    """Cut at 。 into sentences, they are put back together as the document has them: a chunk's
    text (the search snippet, what the agent reads, a quoted phrase) holds no space it lacks."""
    sentence = "当店の返金ポリシーについてご説明いたします。"
    text = sentence * 30
    chunks = chunk_text(text, max_chars=200, overlap_chars=30)
    assert all(" " not in c for c in chunks), chunks[0]
    assert all(c in text for c in chunks)
    assert chunks[0].startswith(sentence)
    # The overlap still starts at a sentence: the next chunk begins with the last one's end.
    assert all(after.startswith(sentence) for after in chunks[1:])
