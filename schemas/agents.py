"""Agent definitions: commands and events; every publish is a new immutable version."""

from dataclasses import dataclass, field
from typing import TypeAlias

from schemas.envelope import AgentEnvelope, doc

AVRO_NAMESPACE = "voice.agents.v1"

AMD_POLICIES = ("ignore", "hang_up", "leave_message")
REJECTION_CODES = ("already_exists", "not_found", "version_conflict", "archived", "invalid")


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """A function the model may call."""

    name: str
    description: str
    parameters_json: str = field(metadata=doc("JSON Schema of the arguments, as text."))
    webhook_url: str | None = field(
        default=None,
        metadata=doc(
            "Where the platform POSTs the arguments, HMAC-signed, when the model calls this tool "
            "(docs/tools.md); none for the built-in tools."
        ),
    )
    timeout_ms: int = field(
        default=5000, metadata=doc("How long the whole webhook request may take before the tool fails.")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """Everything that defines how an agent behaves on a call."""

    system_prompt: str
    voice: str
    language: str = field(metadata=doc("BCP-47 tag."))
    model: str
    tools: tuple[ToolSpec, ...] = ()
    knowledge_base_ids: tuple[str, ...] = ()
    greeting: str | None = None
    max_duration_s: int
    silence_timeout_s: int
    webhook_urls: tuple[str, ...] = ()
    phone_numbers: tuple[str, ...] = field(default=(), metadata=doc("E.164 numbers routed here."))
    transfer_numbers: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "E.164 numbers the agent may transfer a call to (transfer_call); without any, the model "
            "is not offered transfer_call."
        ),
    )
    record_calls: bool
    max_concurrent_calls: int
    answering_machine_policy: str = field(metadata=doc("One of: " + ", ".join(AMD_POLICIES) + "."))
    voicemail_message: str | None = None
    calling_window: str | None = field(
        default=None, metadata=doc("Local hours outbound calls may be placed, e.g. 09:00-18:00.")
    )
    timezone: str = field(metadata=doc("IANA zone name."))
    outcome_labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateAgent(AgentEnvelope):
    """Command: create an agent with no published version yet."""

    name: str
    created_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishAgentVersion(AgentEnvelope):
    """Command: publish a new version; rejected unless the current version is expected_version."""

    expected_version: int = field(metadata=doc("Optimistic concurrency: 0 for the first."))
    config: AgentConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveAgent(AgentEnvelope):
    """Command: archive the agent; it takes no new calls."""

    expected_version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCreated(AgentEnvelope):
    """An agent was created."""

    name: str
    created_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentVersionPublished(AgentEnvelope):
    """A new immutable version of the agent was published."""

    version: int
    config: AgentConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentArchived(AgentEnvelope):
    """The agent was archived."""

    version: int = field(metadata=doc("Last published version at the time."))


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCommandRejected(AgentEnvelope):
    """A command on the agent was refused; the rejection is part of the log."""

    command_type: str = field(metadata=doc("Avro full name of the rejected command."))
    code: str = field(metadata=doc("One of: " + ", ".join(REJECTION_CODES) + "."))
    reason: str
    rejected_event_id: str | None = field(default=None, metadata=doc("event_id of the command."))


AgentCommand: TypeAlias = CreateAgent | PublishAgentVersion | ArchiveAgent
AgentEvent: TypeAlias = AgentCreated | AgentVersionPublished | AgentArchived | AgentCommandRejected
