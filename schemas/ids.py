"""Typed identifiers shared by every record; on the wire they are plain Avro strings."""

from typing import NewType

TenantId = NewType("TenantId", str)
CallId = NewType("CallId", str)
AgentId = NewType("AgentId", str)
KnowledgeBaseId = NewType("KnowledgeBaseId", str)
DocumentId = NewType("DocumentId", str)
EventId = NewType("EventId", str)
CorrelationId = NewType("CorrelationId", str)
CampaignId = NewType("CampaignId", str)
