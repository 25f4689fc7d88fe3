"""The knowledge projection: knowledge_base, document and chunk rows (full-text indexed)."""

from __future__ import annotations

from typing import get_args

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from projections import command_result
from projections.command_projection import CommandProjection
from projections.models import Chunk, Document, KnowledgeBase
from projections.runner import UnappliableError
from schemas import knowledge
from schemas.catalog import KNOWLEDGE_EVENTS


class KnowledgeProjection(CommandProjection[knowledge.KnowledgeEvent]):
    """Folds voice.knowledge.events.v1 into knowledge_base, document and chunk."""

    kind = "a knowledge"
    event_types = get_args(knowledge.KnowledgeEvent)
    rejection = knowledge.KnowledgeCommandRejected
    tables = ("knowledge_base", "document", "chunk", command_result.TABLE)

    def __init__(self, *, name: str = "knowledge", topic: str = KNOWLEDGE_EVENTS.name) -> None:
        super().__init__(name=name, topic=topic)

    def aggregate_id(self, event: knowledge.KnowledgeEvent) -> str:
        return event.kb_id

    async def apply_event(self, session: AsyncSession, event: knowledge.KnowledgeEvent) -> None:
        await _apply(session, event)


async def _apply(session: AsyncSession, event: knowledge.KnowledgeEvent) -> None:
    match event:
        case knowledge.KnowledgeBaseCreated():
            row = {"kb_id": event.kb_id, "tenant_id": event.tenant_id, "name": event.name}
            await session.execute(
                insert(KnowledgeBase).values(row | {"created_at": event.occurred_at}).on_conflict_do_nothing()
            )
        case knowledge.DocumentAdded():
            await _drop_chunks(session, event.kb_id, event.document_id)
            doc = {
                "kb_id": event.kb_id,
                "document_id": event.document_id,
                "tenant_id": event.tenant_id,
                "title": event.title,
                "content_type": event.content_type,
                "content_uri": event.content_uri,
                "size_bytes": event.size_bytes,
                "chunk_count": 0,
                "added_at": event.occurred_at,
            }
            stmt = insert(Document).values(doc)
            updates = {k: stmt.excluded[k] for k in doc if k not in ("kb_id", "document_id")}
            await session.execute(
                stmt.on_conflict_do_update(index_elements=["kb_id", "document_id"], set_=updates)
            )
        case knowledge.ChunksIndexed():
            await _index_chunks(session, event)
        case knowledge.DocumentRemoved():
            await _drop_chunks(session, event.kb_id, event.document_id)
            await session.execute(
                delete(Document).where(
                    Document.kb_id == event.kb_id, Document.document_id == event.document_id
                )
            )
        case knowledge.KnowledgeCommandRejected():
            return


async def _index_chunks(session: AsyncSession, event: knowledge.ChunksIndexed) -> None:
    """Chunks arrive in one or more batches after DocumentAdded (which cleared the old ones)."""
    if not event.chunks:
        return
    rows = [
        {
            "chunk_id": c.chunk_id,
            "kb_id": event.kb_id,
            "document_id": event.document_id,
            "tenant_id": event.tenant_id,
            "ordinal": c.ordinal,
            "text": c.text,
        }
        for c in event.chunks
    ]
    stmt = insert(Chunk).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["chunk_id"], set_={"text": stmt.excluded.text})
    )
    result = await session.execute(
        update(Document)
        .where(Document.kb_id == event.kb_id, Document.document_id == event.document_id)
        .values(chunk_count=Document.chunk_count + len(rows))
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise UnappliableError(f"document {event.document_id} of {event.kb_id} does not exist")


async def _drop_chunks(session: AsyncSession, kb_id: str, document_id: str) -> None:
    await session.execute(delete(Chunk).where(Chunk.kb_id == kb_id, Chunk.document_id == document_id))
