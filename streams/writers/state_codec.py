"""A writer's per-aggregate state as JSON bytes: what its Faust table stores per aggregate.

The folded state, not the event list: a knowledge base's events carry every chunk's text, its
state only the count of chunks indexed per document. Keys are sorted and the window of recent
correlation ids keeps its order (oldest first), so equal states give equal bytes (a changelog
replay or a re-decided command after a crash stores exactly what the first run stored).

Version 2 (ADR 26) keeps only the latest ``recent.RECENT_COMMANDS`` correlation ids (``recent``),
in the order they were handled. Version 1 kept every id ever handled as a sorted list, which
says nothing of their order: which ids a window would keep cannot be read from it. A version 1
state therefore loads as None, and the shell folds the aggregate from its events instead (as
on a table miss, ADR 9), which gives the window exactly, and stores it as version 2.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from schemas.ids import AgentId, KnowledgeBaseId, TenantId
from streams.writers.agent_writer import AgentState
from streams.writers.knowledge_writer import DocumentState, KnowledgeState

_VERSION = 2
_FOLD_THE_LOG = frozenset({1})
"""Earlier versions, whose state the events in the log give exactly (see above)."""


def _bytes(document: dict[str, Any]) -> bytes:
    return json.dumps({"v": _VERSION, **document}, sort_keys=True, separators=(",", ":")).encode()


def _document(data: bytes) -> dict[str, Any] | None:
    """The stored JSON, or None for a version whose state is to be folded from the log."""
    document: dict[str, Any] = json.loads(data)
    version = document.get("v")
    if version in _FOLD_THE_LOG:
        return None
    if version != _VERSION:
        raise ValueError(f"unknown writer state version {version!r}")
    return document


def dump_agent(state: AgentState) -> bytes:
    return _bytes(
        {
            "agent_id": state.agent_id,
            "tenant_id": state.tenant_id,
            "version": state.version,
            "archived": state.archived,
            "seq": state.seq,
            "recent": list(state.handled),
        }
    )


def load_agent(data: bytes) -> AgentState | None:
    """The inverse of dump_agent; None for a state the shell is to fold from the log instead."""
    document = _document(data)
    if document is None:
        return None
    tenant = document["tenant_id"]
    return AgentState(
        agent_id=AgentId(document["agent_id"]),
        tenant_id=TenantId(tenant) if tenant is not None else None,
        version=document["version"],
        archived=document["archived"],
        seq=document["seq"],
        handled=tuple(document["recent"]),
    )


def dump_knowledge(state: KnowledgeState) -> bytes:
    return _bytes(
        {
            "kb_id": state.kb_id,
            "tenant_id": state.tenant_id,
            "seq": state.seq,
            "documents": {
                document_id: [doc.correlation_id, doc.chunks_indexed]
                for document_id, doc in state.documents.items()
            },
            "recent": list(state.handled),
        }
    )


def load_knowledge(data: bytes) -> KnowledgeState | None:
    """The inverse of dump_knowledge; None for a state the shell is to fold from the log instead."""
    document = _document(data)
    if document is None:
        return None
    tenant = document["tenant_id"]
    documents = {
        document_id: DocumentState(correlation_id, chunks_indexed)
        for document_id, (correlation_id, chunks_indexed) in document["documents"].items()
    }
    return KnowledgeState(
        kb_id=KnowledgeBaseId(document["kb_id"]),
        tenant_id=TenantId(tenant) if tenant is not None else None,
        seq=document["seq"],
        documents=MappingProxyType(documents),
        handled=tuple(document["recent"]),
    )
