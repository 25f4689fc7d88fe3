"""Every top-level record class, and lookups by Avro full name and by fingerprint."""

from functools import cache
from typing import Any, TypeAlias, get_args

from schemas.agents import AgentCommand, AgentEvent
from schemas.avro_schema import fingerprint, full_name
from schemas.calls import CallEvent, CallInput
from schemas.deadletter import DeadLetter
from schemas.dialer import DialerEvent, DialerRequest, PostCallEvent
from schemas.knowledge import KnowledgeCommand, KnowledgeEvent

Record: TypeAlias = (
    CallInput
    | CallEvent
    | DialerRequest
    | DialerEvent
    | PostCallEvent
    | AgentCommand
    | AgentEvent
    | KnowledgeCommand
    | KnowledgeEvent
    | DeadLetter
)
"""Any record that may appear as a Kafka value."""


def _unique(*groups: tuple[type[Any], ...]) -> tuple[type[Any], ...]:
    return tuple(dict.fromkeys(cls for group in groups for cls in group))


ALL_RECORDS: tuple[type[Any], ...] = _unique(get_args(Record))
"""Top-level record classes (nested records such as AgentConfig are not listed)."""


@cache
def _by_name() -> dict[str, type[Any]]:
    return {full_name(cls): cls for cls in ALL_RECORDS}


@cache
def _by_fingerprint() -> dict[bytes, type[Any]]:
    table = {fingerprint(cls): cls for cls in ALL_RECORDS}
    if len(table) != len(ALL_RECORDS):
        raise RuntimeError("two record schemas share a CRC-64-AVRO fingerprint")
    return table


def record_for_name(name: str) -> type[Any] | None:
    """The record class with Avro full name ``name``, if any."""
    return _by_name().get(name)


def record_for_fingerprint(fp: bytes) -> type[Any] | None:
    """The record class whose current schema has this 8-byte CRC-64-AVRO fingerprint, if any."""
    return _by_fingerprint().get(fp)
