"""Knowledge bases and their documents and chunks: commands and events."""

from dataclasses import dataclass, field
from typing import TypeAlias

from schemas.envelope import KnowledgeEnvelope, doc
from schemas.ids import DocumentId

AVRO_NAMESPACE = "voice.knowledge.v1"

REJECTION_CODES = ("already_exists", "not_found", "invalid", "unreadable")


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """A searchable piece of a document."""

    chunk_id: str
    ordinal: int = field(metadata=doc("Position within the document, from 0."))
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateKnowledgeBase(KnowledgeEnvelope):
    """Command: create a knowledge base."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AddDocument(KnowledgeEnvelope):
    """Command: add a document, inline when small or by reference when large."""

    document_id: DocumentId
    title: str
    content_type: str = field(metadata=doc("MIME type."))
    content: str | None = field(default=None, metadata=doc("Inline text of small documents."))
    content_uri: str | None = field(default=None, metadata=doc("Where large documents are."))
    size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveDocument(KnowledgeEnvelope):
    """Command: remove a document and its chunks."""

    document_id: DocumentId


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeBaseCreated(KnowledgeEnvelope):
    """A knowledge base was created."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentAdded(KnowledgeEnvelope):
    """A document was added; its chunks follow in ChunksIndexed."""

    document_id: DocumentId
    title: str
    content_type: str = field(metadata=doc("MIME type."))
    content: str | None = None
    content_uri: str | None = None
    size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentRemoved(KnowledgeEnvelope):
    """A document and its chunks were removed."""

    document_id: DocumentId


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunksIndexed(KnowledgeEnvelope):
    """A document was split into chunks; replaces any earlier chunks of that document."""

    document_id: DocumentId
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeCommandRejected(KnowledgeEnvelope):
    """A command on the knowledge base was refused; the rejection is part of the log."""

    command_type: str = field(metadata=doc("Avro full name of the rejected command."))
    code: str = field(metadata=doc("One of: " + ", ".join(REJECTION_CODES) + "."))
    reason: str
    rejected_event_id: str | None = field(default=None, metadata=doc("event_id of the command."))


KnowledgeCommand: TypeAlias = CreateKnowledgeBase | AddDocument | RemoveDocument
KnowledgeEvent: TypeAlias = (
    KnowledgeBaseCreated | DocumentAdded | DocumentRemoved | ChunksIndexed | KnowledgeCommandRejected
)
