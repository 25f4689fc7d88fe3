"""The topic catalog as code: every topic, its key, defaults and the record types it carries.

Partition counts and retention are defaults; infra may override them by setting. Topics are
created from this catalog, and ``python -m schemas.topics_doc`` documents it.
"""

from dataclasses import dataclass
from typing import Any, get_args

from schemas.agents import AgentCommand, AgentEvent
from schemas.calls import CallEvent, CallInput
from schemas.deadletter import DeadLetter
from schemas.dialer import DialerEvent, DialerRequest, PostCallEvent
from schemas.knowledge import KnowledgeCommand, KnowledgeEvent

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSpec:
    """One Kafka topic of the contract."""

    name: str
    key: str
    """Record field whose value is the Kafka key (UTF-8 text; dead letters: original bytes)."""
    partitions: int
    retention_ms: int
    """-1 keeps records forever."""
    cleanup_policy: str
    record_types: tuple[type[Any], ...]
    description: str

    def key_of(self, record: object) -> str | bytes | None:
        """The key value of ``record`` on this topic."""
        value: str | bytes | None = getattr(record, self.key)
        return value


CALL_INPUTS = TopicSpec(
    name="voice.calls.inputs.v1",
    key="call_id",
    partitions=12,
    retention_ms=7 * DAY_MS,
    cleanup_policy="delete",
    record_types=get_args(CallInput),
    description=(
        "Facts and commands about a call, from edge nodes, Twilio status callbacks, the API and "
        "the session workers. The call state machine consumes it and writes the call events."
    ),
)
CALL_EVENTS = TopicSpec(
    name="voice.calls.events.v1",
    key="call_id",
    partitions=12,
    retention_ms=FOREVER,
    cleanup_policy="delete",
    record_types=get_args(CallEvent),
    description=(
        "The call event log, the source of truth for every call, kept forever. Each call's "
        "events have seq 1, 2, 3, ... with no gaps; consumers skip seq <= the last applied."
    ),
)
DIALER_REQUESTS = TopicSpec(
    name="voice.dialer.requests.v1",
    key="agent_id",
    partitions=6,
    retention_ms=7 * DAY_MS,
    cleanup_policy="delete",
    record_types=get_args(DialerRequest),
    description=(
        "Outbound call requests and campaign commands from the API, and the telephony adapter's "
        "reports on each dial (CallDialled, CallDialFailed), serialised per agent."
    ),
)
DIALER_EVENTS = TopicSpec(
    name="voice.dialer.events.v1",
    key="agent_id",
    partitions=6,
    retention_ms=FOREVER,
    cleanup_policy="delete",
    record_types=get_args(DialerEvent),
    description=(
        "What the dialer decided: requests queued or rejected (with the reason), every attempt and "
        "its outcome, operators' hang-ups of attempts not answered yet, answering-machine decisions "
        "and campaign changes. seq counts per agent."
    ),
)
POSTCALL_EVENTS = TopicSpec(
    name="voice.postcall.events.v1",
    key="call_id",
    partitions=12,
    retention_ms=FOREVER,
    cleanup_policy="delete",
    record_types=get_args(PostCallEvent),
    description=(
        "After a call ended: its summary and outcome label, or why the model gave none (seq 1), and "
        "every webhook delivery attempt (seq counts the attempts of one delivery; event ids derive "
        "from the delivery)."
    ),
)
AGENT_COMMANDS = TopicSpec(
    name="voice.agents.commands.v1",
    key="agent_id",
    partitions=3,
    retention_ms=7 * DAY_MS,
    cleanup_policy="delete",
    record_types=get_args(AgentCommand),
    description="Commands on agent definitions, from the API.",
)
AGENT_EVENTS = TopicSpec(
    name="voice.agents.events.v1",
    key="agent_id",
    partitions=3,
    retention_ms=FOREVER,
    cleanup_policy="delete",
    record_types=get_args(AgentEvent),
    description="Agent definitions; every publish is a new immutable version, kept forever.",
)
KNOWLEDGE_COMMANDS = TopicSpec(
    name="voice.knowledge.commands.v1",
    key="kb_id",
    partitions=3,
    retention_ms=7 * DAY_MS,
    cleanup_policy="delete",
    record_types=get_args(KnowledgeCommand),
    description="Commands on knowledge bases and their documents, from the API.",
)
KNOWLEDGE_EVENTS = TopicSpec(
    name="voice.knowledge.events.v1",
    key="kb_id",
    partitions=3,
    retention_ms=FOREVER,
    cleanup_policy="delete",
    record_types=get_args(KnowledgeEvent),
    description="Knowledge bases, their documents and indexed chunks, kept forever.",
)
DEADLETTER = TopicSpec(
    name="voice.deadletter.v1",
    key="key",
    partitions=3,
    retention_ms=30 * DAY_MS,
    cleanup_policy="delete",
    record_types=(DeadLetter,),
    description=(
        "Records that could not be decoded or applied, with the reason and the original bytes; "
        "keyed by the original record's key."
    ),
)

CATALOG: tuple[TopicSpec, ...] = (
    CALL_INPUTS,
    CALL_EVENTS,
    DIALER_REQUESTS,
    DIALER_EVENTS,
    POSTCALL_EVENTS,
    AGENT_COMMANDS,
    AGENT_EVENTS,
    KNOWLEDGE_COMMANDS,
    KNOWLEDGE_EVENTS,
    DEADLETTER,
)


def topic_named(name: str) -> TopicSpec:
    """The spec of topic ``name``; KeyError if the catalog has no such topic."""
    for spec in CATALOG:
        if spec.name == name:
            return spec
    raise KeyError(f"no topic {name!r} in the catalog")


def topics_for(record_type: type[Any]) -> tuple[TopicSpec, ...]:
    """Every topic that may carry ``record_type``."""
    return tuple(spec for spec in CATALOG if record_type in spec.record_types)
