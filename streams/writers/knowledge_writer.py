"""The knowledge-base decider: commands on one base to events; documents become chunk batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TypedDict, assert_never

from schemas.avro_schema import full_name
from schemas.envelope import derive_event_id
from schemas.ids import CorrelationId, EventId, KnowledgeBaseId, TenantId
from schemas.knowledge import (
    AddDocument,
    Chunk,
    ChunksIndexed,
    CreateKnowledgeBase,
    DocumentAdded,
    DocumentRemoved,
    KnowledgeBaseCreated,
    KnowledgeCommand,
    KnowledgeCommandRejected,
    KnowledgeEvent,
    RemoveDocument,
)
from streams.writers.chunker import chunk_text
from streams.writers.recent import remember

# The chunks of one ChunksIndexed, in encoded UTF-8 bytes (ids and text): the ~124 KiB left under the
# producer's and broker's 1 MiB record limit holds the envelope's ids and the Avro framing. Counted in
# bytes, not characters: 256 Ki characters of emoji were over 1 MiB.
MAX_BATCH_BYTES = 900 * 1024
MAX_DOCUMENTS = 5000
"""The most documents a knowledge base holds; AddDocument of one more is rejected (``invalid``).

The writer's stored state keeps about 84 bytes per document (an API document id and the
correlation id that added it, 36 characters each, and its chunk count): 5,000 documents and the
window of recent correlation ids (``recent.RECENT_COMMANDS``) take about 0.46 MB, half the
shell's ``MAX_STATE_BYTES``, which ids of up to ~70 characters still stay under. ADR 26."""
# Per chunk, the Avro length prefixes of its two strings and its ordinal (each varint at most 5 bytes).
_CHUNK_FRAMING_BYTES = 15


@dataclass(frozen=True, slots=True)
class DocumentText:
    """The shell's reading of a document: its text, or why it could not be read."""

    text: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DocumentState:
    correlation_id: str
    chunks_indexed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeState:
    kb_id: KnowledgeBaseId
    tenant_id: TenantId | None = None
    seq: int = 0
    documents: Mapping[str, DocumentState] = field(default_factory=lambda: MappingProxyType({}))
    """The documents in the base now; a removed one is forgotten."""
    handled: tuple[str, ...] = ()
    """The correlation ids of the latest commands decided, oldest first (``recent.remember``)."""


class _Envelope(TypedDict):
    tenant_id: TenantId
    kb_id: KnowledgeBaseId
    seq: int
    event_id: EventId
    occurred_at: datetime
    correlation_id: CorrelationId


def initial_state(kb_id: KnowledgeBaseId) -> KnowledgeState:
    return KnowledgeState(kb_id=kb_id)


def evolve(state: KnowledgeState, event: KnowledgeEvent) -> KnowledgeState:
    state = dataclasses.replace(state, seq=event.seq, handled=remember(state.handled, event.correlation_id))
    docs = dict(state.documents)
    match event:
        case KnowledgeBaseCreated():
            return dataclasses.replace(state, tenant_id=event.tenant_id)
        case DocumentAdded():
            docs[event.document_id] = DocumentState(event.correlation_id, 0)
        case ChunksIndexed():
            before = docs.get(event.document_id, DocumentState(event.correlation_id, 0))
            docs[event.document_id] = DocumentState(
                before.correlation_id, before.chunks_indexed + len(event.chunks)
            )
        case DocumentRemoved():
            docs.pop(event.document_id, None)
        case KnowledgeCommandRejected():
            return state
        case _:
            assert_never(event)
    return dataclasses.replace(state, documents=MappingProxyType(docs))


def decide(
    state: KnowledgeState, command: KnowledgeCommand, text: DocumentText | None = None
) -> list[KnowledgeEvent]:
    """The events ``command`` causes; AddDocument needs the document's ``text``, read by the shell."""
    if isinstance(command, AddDocument) and _interrupted(state, command):
        return _resume_chunks(state, command, text)
    if command.correlation_id in state.handled:
        return []
    if state.tenant_id is not None and command.tenant_id != state.tenant_id:
        return [_rejected(state, command, "not_found", "no such knowledge base")]
    match command:
        case CreateKnowledgeBase():
            if state.tenant_id is not None:
                return [_rejected(state, command, "already_exists", "the knowledge base already exists")]
            return [KnowledgeBaseCreated(**_envelope(state, command, 1), name=command.name)]
        case AddDocument():
            return _add_document(state, command, text or DocumentText(error="no text"))
        case RemoveDocument():
            if state.tenant_id is None:
                return [_rejected(state, command, "not_found", "no such knowledge base")]
            if command.document_id not in state.documents:
                return [_rejected(state, command, "not_found", "no such document")]
            return [DocumentRemoved(**_envelope(state, command, 1), document_id=command.document_id)]
        case _:
            assert_never(command)


def _add_document(state: KnowledgeState, command: AddDocument, text: DocumentText) -> list[KnowledgeEvent]:
    if state.tenant_id is None:
        return [_rejected(state, command, "not_found", "no such knowledge base")]
    if command.document_id not in state.documents and len(state.documents) >= MAX_DOCUMENTS:
        reason = (
            f"the knowledge base holds {len(state.documents)} documents, the most it may hold is "
            f"{MAX_DOCUMENTS}: remove one before adding another"
        )
        return [_rejected(state, command, "invalid", reason)]
    if text.text is None:
        return [_rejected(state, command, "unreadable", text.error or "unreadable document")]
    added = DocumentAdded(
        **_envelope(state, command, 1),
        document_id=command.document_id,
        title=command.title,
        content_type=command.content_type,
        content_uri=command.content_uri,
        size_bytes=command.size_bytes,
    )
    return [added, *_chunk_events(state, command, chunks_of(command, text.text), first_offset=2)]


def _interrupted(state: KnowledgeState, command: AddDocument) -> bool:
    doc = state.documents.get(command.document_id)
    return doc is not None and doc.correlation_id == command.correlation_id


def _resume_chunks(
    state: KnowledgeState, command: AddDocument, text: DocumentText | None
) -> list[KnowledgeEvent]:
    """A re-delivered AddDocument whose chunk batches were cut short by a crash: emit the rest."""
    if text is None or text.text is None:
        return []
    done = state.documents[command.document_id].chunks_indexed
    remaining = chunks_of(command, text.text)[done:]
    return list(_chunk_events(state, command, remaining, first_offset=1))


def chunks_of(command: AddDocument, text: str) -> list[Chunk]:
    return [
        Chunk(chunk_id=f"{command.kb_id}:{command.document_id}:{i}", ordinal=i, text=piece)
        for i, piece in enumerate(chunk_text(text))
    ]


def _chunk_events(
    state: KnowledgeState, command: AddDocument, chunks: list[Chunk], *, first_offset: int
) -> list[ChunksIndexed]:
    batches: list[list[Chunk]] = []
    size = 0
    for chunk in chunks:
        chunk_size = encoded_size(chunk)
        if not batches or size + chunk_size > MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(chunk)
        size += chunk_size
    return [
        ChunksIndexed(
            **_envelope(state, command, first_offset + i),
            document_id=command.document_id,
            chunks=tuple(batch),
        )
        for i, batch in enumerate(batches)
    ]


def encoded_size(chunk: Chunk) -> int:
    """An upper bound on the bytes ``chunk`` takes in an encoded ChunksIndexed."""
    return len(chunk.chunk_id.encode()) + len(chunk.text.encode()) + _CHUNK_FRAMING_BYTES


def _envelope(state: KnowledgeState, command: KnowledgeCommand, offset: int) -> _Envelope:
    seq = state.seq + offset
    return {
        "tenant_id": state.tenant_id or command.tenant_id,
        "kb_id": state.kb_id,
        "seq": seq,
        "event_id": derive_event_id(state.kb_id, seq),
        "occurred_at": command.occurred_at,
        "correlation_id": command.correlation_id,
    }


def _rejected(
    state: KnowledgeState, command: KnowledgeCommand, code: str, reason: str
) -> KnowledgeCommandRejected:
    return KnowledgeCommandRejected(
        **_envelope(state, command, 1),
        command_type=full_name(type(command)),
        code=code,
        reason=reason,
        rejected_event_id=command.event_id,
    )


def fold(state: KnowledgeState, events: list[KnowledgeEvent]) -> KnowledgeState:
    for event in events:
        state = evolve(state, event)
    return state
