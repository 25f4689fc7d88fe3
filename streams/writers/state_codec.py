"""A writer's per-aggregate state as JSON bytes: what its Faust table stores per aggregate.

The folded state, not the event list: a knowledge base's events carry every chunk's text, its
state only the count of chunks indexed per document. Keys are sorted and sets become sorted
lists, so equal states give equal bytes (a changelog replay or a re-decided command after a
crash stores exactly what the first run stored).
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from schemas.ids import AgentId, KnowledgeBaseId, TenantId
from streams.writers.agent_writer import AgentState
from streams.writers.knowledge_writer import DocumentState, KnowledgeState

_VERSION = 1


def _bytes(document: dict[str, Any]) -> bytes:
    return json.dumps({"v": _VERSION, **document}, sort_keys=True, separators=(",", ":")).encode()


def _document(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(data)
    if document.get("v") != _VERSION:
        raise ValueError(f"unknown writer state version {document.get('v')!r}")
    return document


def dump_agent(state: AgentState) -> bytes:
    return _bytes(
        {
            "agent_id": state.agent_id,
            "tenant_id": state.tenant_id,
            "version": state.version,
            "archived": state.archived,
            "seq": state.seq,
            "handled": sorted(state.handled),
        }
    )


def load_agent(data: bytes) -> AgentState:
    """The inverse of dump_agent."""
    document = _document(data)
    tenant = document["tenant_id"]
    return AgentState(
        agent_id=AgentId(document["agent_id"]),
        tenant_id=TenantId(tenant) if tenant is not None else None,
        version=document["version"],
        archived=document["archived"],
        seq=document["seq"],
        handled=frozenset(document["handled"]),
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
            "handled": sorted(state.handled),
        }
    )


def load_knowledge(data: bytes) -> KnowledgeState:
    """The inverse of dump_knowledge."""
    document = _document(data)
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
        handled=frozenset(document["handled"]),
    )
