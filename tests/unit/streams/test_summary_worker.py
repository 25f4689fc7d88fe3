"""The summary worker: a verdict becomes CallSummarized; a model that never gives one, CallSummaryFailed."""

from __future__ import annotations

import json

from infra.settings import Settings
from schemas.dialer import CallSummarized, CallSummaryFailed, PostCallEvent
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, TenantId
from streams.summary.runner import Generate, SummaryWorker
from streams.summary.tracker import SummaryJob

JOB = SummaryJob(
    tenant_id=TenantId("t1"),
    call_id=CallId("call_1"),
    agent_id=AgentId("agt_1"),
    correlation_id=CorrelationId("call_1"),
    turns=[("caller", "I want to cancel my booking"), ("agent", "Done, it is cancelled.")],
)


class Model:
    """A fake model: answers each prompt with the next reply, or raises it."""

    def __init__(self, *replies: str | Exception) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    async def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


async def _summarise(generate: Generate, attempts: int) -> list[PostCallEvent]:
    worker = SummaryWorker(Settings(env="test"), generate, model="m", attempts=attempts)
    published: list[PostCallEvent] = []

    async def publish(record: PostCallEvent) -> None:
        published.append(record)

    await worker._summarise(JOB, publish)
    return published


async def test_a_model_that_fails_every_attempt_leaves_a_call_summary_failed() -> None:
    model = Model(RuntimeError("503 UNAVAILABLE"), TimeoutError("read timed out"))
    (failed,) = await _summarise(model, attempts=2)
    assert isinstance(failed, CallSummaryFailed)
    assert len(model.prompts) == 2
    assert (failed.tenant_id, failed.call_id, failed.agent_id) == (JOB.tenant_id, JOB.call_id, JOB.agent_id)
    assert (failed.seq, failed.correlation_id) == (1, JOB.correlation_id)
    assert (failed.attempts, failed.model) == (2, "m")
    assert failed.reason == "TimeoutError: read timed out"


async def test_a_replayed_failure_carries_the_same_event_id_and_not_the_summarys() -> None:
    first = await _summarise(Model(RuntimeError("503")), attempts=1)
    again = await _summarise(Model(ValueError("bad")), attempts=1)
    assert first[0].event_id == again[0].event_id
    assert first[0].event_id == derive_event_id(JOB.call_id, 1, "postcall.summary_failed")
    assert first[0].event_id != derive_event_id(JOB.call_id, 1, "postcall.summary")


async def test_replies_without_a_summary_are_retried_and_then_a_failure() -> None:
    model = Model(json.dumps({"summary": "", "outcome": "cancelled"}), "   ")
    (failed,) = await _summarise(model, attempts=2)
    assert isinstance(failed, CallSummaryFailed)
    assert failed.reason == "the model's reply held no summary"


async def test_a_later_attempt_that_answers_gives_only_call_summarized() -> None:
    model = Model(RuntimeError("503"), json.dumps({"summary": "Cancelled a booking.", "outcome": "x"}))
    (summarized,) = await _summarise(model, attempts=2)
    assert isinstance(summarized, CallSummarized)
    assert summarized.summary == "Cancelled a booking."
    assert summarized.event_id == derive_event_id(JOB.call_id, 1, "postcall.summary")
