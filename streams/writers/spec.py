"""What the Faust writers run: each decider with its topics, its state codec and document reading."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import unquote, urlparse

from schemas.catalog import AGENT_COMMANDS, AGENT_EVENTS, KNOWLEDGE_COMMANDS, KNOWLEDGE_EVENTS, TopicSpec
from schemas.knowledge import AddDocument, KnowledgeCommand, KnowledgeEvent
from schemas.registry import Record
from streams.writers import agent_writer, knowledge_writer, state_codec
from streams.writers.extract import extract_text


class Sequenced(Protocol):
    """A writer state: it knows the seq of the last event folded into it."""

    @property
    def seq(self) -> int: ...


S = TypeVar("S", bound=Sequenced)


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterSpec(Generic[S]):
    """One decider and its topics, with the shell's per-command preparation."""

    name: str
    commands: TopicSpec
    events: TopicSpec
    initial: Callable[[Any], S]
    evolve: Callable[[S, Any], S]
    decide: Callable[[S, Any], list[Any]]
    dump: Callable[[S], bytes]
    load: Callable[[bytes], S | None]
    """The stored state; None when it is of an earlier format that the log is to rebuild."""


def agent_spec() -> WriterSpec[agent_writer.AgentState]:
    return WriterSpec(
        name="agents",
        commands=AGENT_COMMANDS,
        events=AGENT_EVENTS,
        initial=agent_writer.initial_state,
        evolve=agent_writer.evolve,
        decide=agent_writer.decide,
        dump=state_codec.dump_agent,
        load=state_codec.load_agent,
    )


def knowledge_spec(blob_dir: Path) -> WriterSpec[knowledge_writer.KnowledgeState]:
    def decide(state: knowledge_writer.KnowledgeState, command: KnowledgeCommand) -> list[KnowledgeEvent]:
        text = read_document(command, blob_dir) if isinstance(command, AddDocument) else None
        return knowledge_writer.decide(state, command, text)

    return WriterSpec(
        name="knowledge",
        commands=KNOWLEDGE_COMMANDS,
        events=KNOWLEDGE_EVENTS,
        initial=knowledge_writer.initial_state,
        evolve=knowledge_writer.evolve,
        decide=decide,
        dump=state_codec.dump_knowledge,
        load=state_codec.load_knowledge,
    )


def read_document(command: AddDocument, blob_dir: Path) -> knowledge_writer.DocumentText:
    """The document's text, inline or from a file:// URI inside the blob directory."""
    try:
        if command.content is not None:
            raw = command.content
        elif command.content_uri is not None:
            raw = _read_blob(command.content_uri, blob_dir)
        else:
            return knowledge_writer.DocumentText(error="neither content nor content_uri")
        return knowledge_writer.DocumentText(text=extract_text(command.content_type, raw))
    except (OSError, ValueError) as err:
        # ValueError covers an unsupported type and a document its parser cannot read
        # (extract_text turns parser failures into ValueError): both are the sender's problem.
        return knowledge_writer.DocumentText(error=str(err))


def _read_blob(uri: str, blob_dir: Path) -> str:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"unsupported content_uri scheme {parsed.scheme!r}")
    path = Path(unquote(parsed.path)).resolve()
    if not path.is_relative_to(blob_dir.resolve()):
        raise ValueError("content_uri is outside the blob directory")
    return path.read_text(encoding="utf-8", errors="replace")


def aggregate_id(record: Record, spec: WriterSpec[Any]) -> str:
    value = spec.commands.key_of(record)
    if not isinstance(value, str):
        raise TypeError("commands are keyed by a text aggregate id")
    return value
