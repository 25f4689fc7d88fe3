"""/api/knowledge: knowledge bases, document upload and removal, ranked full-text search."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlparse

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api import store
from api.command_http import envelope, settle
from api.commands import new_id
from api.deps import ContextDep, Operator, SessionDep, Viewer
from api.problems import ProblemError
from projections import queries
from schemas.ids import DocumentId, KnowledgeBaseId
from schemas.knowledge import AddDocument, CreateKnowledgeBase, RemoveDocument
from streams.writers.extract import SUPPORTED_TYPES

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"])
REJECTION_STATUS = {"not_found": 404, "already_exists": 409, "invalid": 422, "unreadable": 422}
_EXTENSIONS = {"text/plain": "txt", "text/markdown": "md", "text/html": "html"}


class KnowledgeBaseCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class KnowledgeBasePublic(BaseModel):
    kb_id: str
    name: str
    created_at: datetime


class KnowledgeBasesPublic(BaseModel):
    items: list[KnowledgeBasePublic]
    next_cursor: str | None


class DocumentPublic(BaseModel):
    kb_id: str
    document_id: str
    title: str
    content_type: str
    size_bytes: int
    chunk_count: int
    added_at: datetime


class SearchHit(BaseModel):
    kb_id: str
    document_id: str
    title: str
    chunk_id: str
    ordinal: int
    rank: float
    snippet: str = Field(description="matching text, terms wrapped in <mark></mark>")


def _envelope(tenant_id: str, kb_id: str) -> dict[str, Any]:
    return envelope(tenant_id) | {"kb_id": KnowledgeBaseId(kb_id)}


async def _base(session: SessionDep, tenant_id: str, kb_id: str) -> dict[str, Any]:
    found = await queries.get_knowledge_base(session, tenant_id, kb_id)
    if found is None:
        raise ProblemError(404, f"no knowledge base {kb_id}")
    return found


@router.post("/bases", status_code=201, response_model=KnowledgeBasePublic | None)
async def create_base(
    body: KnowledgeBaseCreate,
    principal: Operator,
    context: ContextDep,
    session: SessionDep,
    response: Response,
) -> KnowledgeBasePublic | None:
    kb_id = new_id("kb")
    command = CreateKnowledgeBase(**_envelope(principal.tenant_id, kb_id), name=body.name)
    await context.bus.send(command)
    await store.audit(
        session, principal, "knowledge.create", "knowledge_base", kb_id, correlation_id=command.correlation_id
    )
    await session.commit()
    location = f"/api/knowledge/bases/{kb_id}"
    if not await settle(context.bus, command.correlation_id, response, location, REJECTION_STATUS):
        return None
    response.headers["Location"] = location
    return KnowledgeBasePublic(**await _base(session, principal.tenant_id, kb_id))


@router.get("/bases", response_model=KnowledgeBasesPublic)
async def list_bases(
    principal: Viewer,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> KnowledgeBasesPublic:
    try:
        page = await queries.list_knowledge_bases(session, principal.tenant_id, cursor=cursor, limit=limit)
    except queries.BadCursorError as err:
        raise ProblemError(400, str(err)) from err
    return KnowledgeBasesPublic(
        items=[KnowledgeBasePublic(**r) for r in page.items], next_cursor=page.next_cursor
    )


@router.get("/bases/{kb_id}", response_model=KnowledgeBasePublic)
async def get_base(kb_id: str, principal: Viewer, session: SessionDep) -> KnowledgeBasePublic:
    return KnowledgeBasePublic(**await _base(session, principal.tenant_id, kb_id))


@router.get("/bases/{kb_id}/documents", response_model=list[DocumentPublic])
async def list_documents(kb_id: str, principal: Viewer, session: SessionDep) -> list[DocumentPublic]:
    await _base(session, principal.tenant_id, kb_id)
    return [DocumentPublic(**r) for r in await queries.list_documents(session, principal.tenant_id, kb_id)]


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {kind: {"schema": {"type": "string"}} for kind in sorted(SUPPORTED_TYPES)},
    }
}


@router.post(
    "/bases/{kb_id}/documents",
    status_code=201,
    response_model=DocumentPublic | None,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_document(
    kb_id: str,
    request: Request,
    principal: Operator,
    context: ContextDep,
    session: SessionDep,
    response: Response,
    title: Annotated[str, Query(min_length=1, max_length=300)],
) -> DocumentPublic | None:
    """The raw document is the body; its Content-Type says how to read it."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in SUPPORTED_TYPES:
        raise ProblemError(
            415, f"unsupported Content-Type {content_type!r}; send one of {sorted(SUPPORTED_TYPES)}"
        )
    await _base(session, principal.tenant_id, kb_id)
    data = await _read_limited(request, context.settings.api.max_upload_bytes)
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is no part of the first word
    except UnicodeDecodeError as err:
        raise ProblemError(422, "the document is not UTF-8 text") from err
    if "\x00" in text:
        raise ProblemError(422, "the document contains NUL characters")
    document_id = new_id("doc")
    inline = len(data) <= context.settings.api.inline_document_max_bytes
    uri = None
    if not inline:
        args = (context.blob_dir, principal.tenant_id, kb_id, document_id, content_type, data)
        uri = await asyncio.to_thread(_store_blob, *args)
    command = AddDocument(
        **_envelope(principal.tenant_id, kb_id),
        document_id=DocumentId(document_id),
        title=title,
        content_type=content_type,
        content=text if inline else None,
        content_uri=uri,
        size_bytes=len(data),
    )
    location = f"/api/knowledge/bases/{kb_id}/documents/{document_id}"
    try:
        await context.bus.send(command)
        await store.audit(
            session, principal, "document.add", "document", document_id, correlation_id=command.correlation_id
        )
        await session.commit()
        if not await settle(context.bus, command.correlation_id, response, location, REJECTION_STATUS):
            return None
    except ProblemError:  # refused: nothing will read the file
        await asyncio.to_thread(_forget_blob, context.blob_dir, uri)
        raise
    response.headers["Location"] = location
    found = await queries.get_document(session, principal.tenant_id, kb_id, document_id)
    return DocumentPublic(**found) if found else None


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"documents may be at most {limit} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise ProblemError(413, f"documents may be at most {limit} bytes")
    if not body:
        raise ProblemError(422, "the document is empty")
    return bytes(body)


def _forget_blob(blob_dir: Path, uri: str | None) -> None:
    """Delete a document's stored file (only ever one inside the blob directory)."""
    if uri is None or not uri.startswith("file://"):
        return
    path = Path(unquote(urlparse(uri).path)).resolve()
    if path.is_relative_to(blob_dir.resolve()):
        path.unlink(missing_ok=True)


def _store_blob(
    blob_dir: Path, tenant_id: str, kb_id: str, document_id: str, content_type: str, data: bytes
) -> str:
    folder = blob_dir / tenant_id / kb_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{document_id}.{_EXTENSIONS[content_type]}"
    path.write_bytes(data)
    return path.resolve().as_uri()


@router.get("/bases/{kb_id}/documents/{document_id}", response_model=DocumentPublic)
async def get_document(
    kb_id: str, document_id: str, principal: Viewer, session: SessionDep
) -> DocumentPublic:
    found = await queries.get_document(session, principal.tenant_id, kb_id, document_id)
    if found is None:
        raise ProblemError(404, f"no document {document_id} in {kb_id}")
    return DocumentPublic(**found)


@router.delete("/bases/{kb_id}/documents/{document_id}", status_code=204)
async def delete_document(
    kb_id: str,
    document_id: str,
    principal: Operator,
    context: ContextDep,
    session: SessionDep,
    response: Response,
) -> Response:
    found = await queries.get_document(session, principal.tenant_id, kb_id, document_id)
    if found is None:
        raise ProblemError(404, f"no document {document_id} in {kb_id}")
    command = RemoveDocument(**_envelope(principal.tenant_id, kb_id), document_id=DocumentId(document_id))
    await context.bus.send(command)
    await store.audit(
        session, principal, "document.remove", "document", document_id, correlation_id=command.correlation_id
    )
    await session.commit()
    pending, location = Response(status_code=202), f"/api/knowledge/bases/{kb_id}/documents"
    if not await settle(context.bus, command.correlation_id, pending, location, REJECTION_STATUS):
        return pending
    # Removed: its full text must not stay on disk (chunks in the log are what replays use).
    await asyncio.to_thread(_forget_blob, context.blob_dir, found["content_uri"])
    return Response(status_code=204)


@router.get("/search", response_model=list[SearchHit])
async def search(
    principal: Viewer,
    session: SessionDep,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    kb_id: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[SearchHit]:
    hits = await queries.search_chunks(session, principal.tenant_id, q, kb_ids=kb_id, limit=limit)
    return [SearchHit(**h) for h in hits]
