"""Envelope fields every record starts with, and deterministic event ids.

Every record carries, flat and in this order: ``tenant_id``, the aggregate id (``call_id``,
``agent_id`` or ``kb_id``), ``seq``, ``event_id``, ``occurred_at``, ``correlation_id``. The
bases below declare them once; records inherit them so the field order is always the same.

Event ids are *derived*, never random: ``derive_event_id(aggregate_id, seq, kind)`` is a UUIDv5
over a fixed namespace. The broker we run on cannot do idempotent or transactional producers,
so a decider that re-processes an input after a crash must re-emit byte-identical events, and
consumers must be able to recognise a duplicate by its id. ``kind`` separates id spaces that
share an aggregate and sequence (for example a command's id from the events it caused).
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.ids import AgentId, CallId, CorrelationId, EventId, KnowledgeBaseId, TenantId

# Fixed forever: changing it would change every derived id and break de-duplication on replay.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c7a52-3c1e-5b8e-9a0d-2f6b8f4e1d37")


def derive_event_id(aggregate_id: str, seq: int, kind: str = "event") -> EventId:
    """The UUID text for the ``seq``-th record of ``kind`` on ``aggregate_id``."""
    return EventId(str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{kind}:{aggregate_id}:{seq}")))


def doc(text: str) -> dict[str, Any]:
    """Field metadata carrying the Avro ``doc`` of a field."""
    return {"doc": text}


_SEQ_DOC = (
    "Per-aggregate sequence number. On event topics it starts at 1 and grows by exactly 1; "
    "on input and command topics it is the sender's own counter (0 when it has none)."
)
_EVENT_ID_DOC = "UUID text; derived from the aggregate id and seq so re-emission is identical."
_OCCURRED_DOC = "When the fact happened (UTC, microseconds)."
_CORRELATION_DOC = "Id of the request or input that caused this record; ties a chain together."


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnvelope:
    """Envelope of every record keyed by a call."""

    tenant_id: TenantId = field(metadata=doc("Tenant that owns the call."))
    call_id: CallId = field(metadata=doc("The call (aggregate id and Kafka key)."))
    seq: int = field(metadata=doc(_SEQ_DOC))
    event_id: EventId = field(metadata=doc(_EVENT_ID_DOC))
    occurred_at: datetime = field(metadata=doc(_OCCURRED_DOC))
    correlation_id: CorrelationId = field(metadata=doc(_CORRELATION_DOC))


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEnvelope:
    """Envelope of every record keyed by an agent (agent definitions and dialer requests)."""

    tenant_id: TenantId = field(metadata=doc("Tenant that owns the agent."))
    agent_id: AgentId = field(metadata=doc("The agent (aggregate id and Kafka key)."))
    seq: int = field(metadata=doc(_SEQ_DOC))
    event_id: EventId = field(metadata=doc(_EVENT_ID_DOC))
    occurred_at: datetime = field(metadata=doc(_OCCURRED_DOC))
    correlation_id: CorrelationId = field(metadata=doc(_CORRELATION_DOC))


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeEnvelope:
    """Envelope of every record keyed by a knowledge base."""

    tenant_id: TenantId = field(metadata=doc("Tenant that owns the knowledge base."))
    kb_id: KnowledgeBaseId = field(metadata=doc("The knowledge base (aggregate id and Kafka key)."))
    seq: int = field(metadata=doc(_SEQ_DOC))
    event_id: EventId = field(metadata=doc(_EVENT_ID_DOC))
    occurred_at: datetime = field(metadata=doc(_OCCURRED_DOC))
    correlation_id: CorrelationId = field(metadata=doc(_CORRELATION_DOC))
