"""The dead-letter record: a Kafka record that could not be decoded or applied, and why.

It carries no call/agent envelope because the record it describes may not have a readable
one; it keeps the original bytes so the record can be inspected and replayed.
"""

from dataclasses import dataclass, field
from datetime import datetime

from schemas.envelope import doc

AVRO_NAMESPACE = "voice.deadletter.v1"

DEADLETTER_REASONS = ("undecodable", "unknown_type", "rejected_by_handler", "handler_error")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A record that a consumer gave up on, with its coordinates and the reason."""

    original_topic: str
    partition: int
    offset: int
    key: bytes | None = field(default=None, metadata=doc("Original key bytes, if any."))
    value: bytes = field(metadata=doc("Original value bytes, unchanged."))
    reason: str = field(metadata=doc("One of: " + ", ".join(DEADLETTER_REASONS) + "."))
    error_type: str = field(metadata=doc("Exception class name."))
    error_message: str = field(default="", metadata=doc("Human-readable detail."))
    failed_at: datetime
    consumer_group: str
