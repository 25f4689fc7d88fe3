"""The writers' shell: state from the table or folded from the log, decide, emit, and the stored bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from schemas.agents import AgentCreated, AgentVersionPublished, CreateAgent, PublishAgentVersion
from schemas.codec import Codec
from schemas.ids import AgentId, CorrelationId, DocumentId, EventId, KnowledgeBaseId, TenantId
from schemas.knowledge import AddDocument, CreateKnowledgeBase
from streams.writers import agent_writer, knowledge_writer, state_codec
from streams.writers import app as writers_app
from streams.writers.shell import CommandHandler, fold_log
from streams.writers.spec import agent_spec, knowledge_spec
from tests.support.agents import agent_config

CODEC = Codec.single_object()
NOW = datetime(2026, 11, 26, tzinfo=UTC)
AGENT = AgentId("agt_1")
CONFIG = agent_config(silence_timeout_s=10)


def env(correlation: str) -> dict[str, Any]:
    return {
        "tenant_id": TenantId("t1"),
        "seq": 0,
        "event_id": EventId(f"cmd-{correlation}"),
        "occurred_at": NOW,
        "correlation_id": CorrelationId(correlation),
    }


CREATE = CreateAgent(**env("c1"), agent_id=AGENT, name="A", created_by="k")


def publish(correlation: str, expected_version: int) -> PublishAgentVersion:
    return PublishAgentVersion(
        **env(correlation), agent_id=AGENT, expected_version=expected_version, config=CONFIG
    )


class Log:
    """A fake events topic: what was emitted, and the history a table miss reads back."""

    def __init__(self, events: list[Any] | None = None) -> None:
        self.events = list(events or [])
        self.emitted: list[tuple[bytes, bytes]] = []
        self.reads = 0

    async def history(self, aggregate: str) -> list[Any]:
        self.reads += 1
        return [e for e in self.events if e.agent_id == aggregate]

    async def emit(self, key: bytes, value: bytes) -> None:
        self.emitted.append((key, value))
        self.events.append(CODEC.decode(value))


def created_events() -> list[Any]:
    return agent_writer.decide(agent_writer.initial_state(AGENT), CREATE)


async def test_a_table_miss_folds_the_aggregate_from_the_log_and_continues_its_seq() -> None:
    log = Log(created_events())
    stored = await CommandHandler(agent_spec(), CODEC, log.history).handle(None, publish("c2", 0), log.emit)
    [(key, value)] = log.emitted
    event = CODEC.decode(value)
    assert key == AGENT.encode()
    assert isinstance(event, AgentVersionPublished)
    assert (event.seq, event.version) == (2, 1)
    assert stored is not None
    assert state_codec.load_agent(stored) == agent_writer.fold(agent_writer.initial_state(AGENT), log.events)


async def test_a_table_hit_does_not_read_the_log() -> None:
    log = Log()
    handler = CommandHandler(agent_spec(), CODEC, log.history)
    stored = await handler.handle(None, CREATE, log.emit)
    await handler.handle(stored, publish("c2", 0), log.emit)
    assert log.reads == 1
    assert [type(CODEC.decode(v)) for _, v in log.emitted] == [AgentCreated, AgentVersionPublished]


async def test_a_redelivered_command_emits_nothing_and_leaves_the_table_alone() -> None:
    log = Log()
    handler = CommandHandler(agent_spec(), CODEC, log.history)
    stored = await handler.handle(None, CREATE, log.emit)
    calls: list[str] = []
    again = await handler.handle(stored, CREATE, log.emit, calls.append)
    assert again is None
    assert len(log.emitted) == 1
    assert calls == []


async def test_re_deciding_from_the_same_stored_state_emits_identical_bytes() -> None:
    """A crash between send and table update re-runs the command on the old state."""
    log = Log()
    handler = CommandHandler(agent_spec(), CODEC, log.history)
    stored = await handler.handle(None, CREATE, log.emit)
    calls: list[str] = []
    first = await handler.handle(stored, publish("c2", 0), log.emit, calls.append)
    second = await handler.handle(stored, publish("c2", 0), log.emit, calls.append)
    assert log.emitted[1] == log.emitted[2]
    assert first == second
    assert calls == [AGENT, AGENT]


def test_fold_log_skips_events_a_crash_left_in_the_log_twice() -> None:
    kb = KnowledgeBaseId("kb_1")
    create = CreateKnowledgeBase(**env("k1"), kb_id=kb, name="KB")
    add = AddDocument(
        **env("k2"),
        kb_id=kb,
        document_id=DocumentId("d1"),
        title="T",
        content_type="text/plain",
        content="Some text. " * 50,
        content_uri=None,
        size_bytes=550,
    )
    spec = knowledge_spec(Path("/nonexistent"))
    state = knowledge_writer.initial_state(kb)
    events = spec.decide(state, create)
    state = knowledge_writer.fold(state, events)
    added = spec.decide(state, add)
    once = fold_log(spec, kb, [*events, *added])
    twice = fold_log(spec, kb, [*events, *added, *added[1:]])
    assert twice == once
    assert once.documents[DocumentId("d1")].chunks_indexed == len(added[1].chunks)


def test_the_stored_states_round_trip_and_equal_states_give_equal_bytes() -> None:
    agent = agent_writer.fold(agent_writer.initial_state(AGENT), created_events())
    agent = agent_writer.fold(agent, agent_writer.decide(agent, publish("c2", 0)))
    dumped = state_codec.dump_agent(agent)
    loaded_agent = state_codec.load_agent(dumped)
    assert loaded_agent == agent
    assert state_codec.dump_agent(loaded_agent) == dumped
    documents = {
        "d2": knowledge_writer.DocumentState("k3", 2),
        "d1": knowledge_writer.DocumentState("k2", 5),
    }
    kb = knowledge_writer.KnowledgeState(
        kb_id=KnowledgeBaseId("kb_1"),
        tenant_id=TenantId("t1"),
        seq=4,
        documents=documents,
        handled=("k1", "k2", "k3"),
    )
    dumped = state_codec.dump_knowledge(kb)
    loaded = state_codec.load_knowledge(dumped)
    assert loaded is not None
    assert (loaded.kb_id, loaded.tenant_id, loaded.seq) == (kb.kb_id, kb.tenant_id, 4)
    assert (loaded.handled, dict(loaded.documents)) == (kb.handled, documents)
    assert state_codec.dump_knowledge(loaded) == dumped


class OutageLog(Log):
    """The log behind a broker that refuses the first ``failures`` history reads."""

    def __init__(self, failures: int, events: list[Any] | None = None) -> None:
        super().__init__(events)
        self.failures = failures

    async def history(self, aggregate: str) -> list[Any]:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError()
        return await super().history(aggregate)


async def test_a_command_waits_out_a_broker_outage_and_is_then_decided_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writers_app, "BROKER_RETRY_S", (0.001,))
    log = OutageLog(failures=3, events=created_events())
    handler = CommandHandler(agent_spec(), CODEC, log.history)
    states: dict[bytes, bytes] = {}  # a table miss: the history must be read
    stored = await writers_app._handle_through_outages(
        handler, states, AGENT.encode(), publish("c2", 0), log.emit, None
    )
    assert (log.failures, log.reads) == (0, 1)  # three refused reads, then one that worked
    [(_, value)] = log.emitted
    assert isinstance(CODEC.decode(value), AgentVersionPublished)
    assert stored is not None


async def test_a_refusal_no_retry_can_cure_is_raised_at_once_for_the_dead_letter() -> None:
    log = Log(created_events())

    async def refused(key: bytes, value: bytes) -> None:
        raise MessageSizeTooLargeError()

    handler = CommandHandler(agent_spec(), CODEC, log.history)
    with pytest.raises(MessageSizeTooLargeError):
        await writers_app._handle_through_outages(
            handler, {}, AGENT.encode(), publish("c2", 0), refused, None
        )
