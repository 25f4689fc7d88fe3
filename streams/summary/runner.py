"""The summary worker: finished calls in, ``CallSummarized`` out, offsets committed behind them.

Runs on ``CallEventsRunner`` (its own consumer group on ``voice.calls.events.v1``); the agents'
outcome labels come from their published versions. Calls to the model are bounded, and a crash
summarises again (the event id is derived from the call, so the projection keeps one). A call
the model gives no usable summary for in any attempt gets ``CallSummaryFailed`` with the reason,
and so does a call whose end arrives with its start never seen (``START_NOT_SEEN``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from google.genai import types

from infra.settings import Settings
from schemas.agents import AgentVersionPublished
from schemas.dialer import CallSummarized, CallSummaryFailed
from schemas.envelope import derive_event_id
from schemas.ids import AgentId
from streams.call_events_runner import CallEventsRunner, Job, Publish
from streams.summary.prompt import Verdict, build_prompt, read_reply
from streams.summary.tracker import CallTracker, StartNotSeen, SummaryJob

log = logging.getLogger(__name__)

START_NOT_SEEN = (
    "the call's start was not seen (the worker restarted past it, or forgot the call when it"
    " outlasted its maximum duration)"
)

Generate = Callable[[str], Awaitable[str]]
"""Send one prompt to the model and return its text."""


def genai_generate(client: Any, model: str) -> Generate:
    """``models.generate_content`` of a google-genai client, asking for JSON."""
    config = types.GenerateContentConfig(response_mime_type="application/json", temperature=0.0)

    async def generate(prompt: str) -> str:
        response = await client.aio.models.generate_content(model=model, contents=prompt, config=config)
        return str(response.text or "")

    return generate


class SummaryWorker:
    """Summarises each finished call with the labels of its agent's latest version."""

    def __init__(
        self,
        settings: Settings,
        generate: Generate,
        *,
        model: str,
        group_id: str = "voice-summary",
        max_in_flight: int = 8,
        attempts: int = 3,
    ) -> None:
        self._settings = settings
        self._generate = generate
        self._model = model
        self._group = group_id
        self._gate = asyncio.Semaphore(max_in_flight)
        self._attempts = attempts
        self.tracker = CallTracker()
        self.labels: dict[AgentId, tuple[str, ...]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        runner = CallEventsRunner(
            self._settings,
            group_id=self._group,
            on_agent=self._on_agent,
            on_call=self._on_call,
            on_forget=self.tracker.forget,
            fetch_max_wait_ms=self._settings.kafka.fetch_waits.summary,
        )
        await runner.run(stop)

    def _on_agent(self, version: AgentVersionPublished) -> None:
        self.labels[version.agent_id] = version.config.outcome_labels

    def _on_call(self, event: object) -> list[Job]:
        match self.tracker.observe(event):
            case SummaryJob() as job:
                return [Job(f"summarising call {job.call_id}", partial(self._summarise, job))]
            case StartNotSeen() as unseen:
                return [Job(f"recording call {unseen.call_id} unsummarised", partial(self._unseen, unseen))]
            case None:
                return []

    async def _unseen(self, unseen: StartNotSeen, publish: Publish) -> None:
        log.warning("call %s ended, but %s: it gets no summary", unseen.call_id, START_NOT_SEEN)
        await publish(start_not_seen(unseen, self._model, datetime.now(UTC)))

    async def _summarise(self, job: SummaryJob, publish: Publish) -> None:
        labels = self.labels.get(job.agent_id, ())
        answer = await self._ask(build_prompt(job.turns, labels), labels)
        now = datetime.now(UTC)
        if isinstance(answer, Verdict):
            await publish(summarized(job, answer, self._model, now))
            return
        log.error("call %s gets no summary after %d attempts: %s", job.call_id, self._attempts, answer)
        await publish(summary_failed(job, answer, self._attempts, self._model, now))

    async def _ask(self, prompt: str, labels: tuple[str, ...]) -> Verdict | str:
        """The model's verdict, or why the last attempt gave none."""
        reason = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._gate:
                    verdict = read_reply(await self._generate(prompt), labels)
                if verdict.summary:
                    return verdict
                reason = "the model's reply held no summary"
            except Exception as err:  # the model's errors are many; all of them are worth a retry
                reason = f"{type(err).__name__}: {err}"[:500]
            log.warning("summary attempt %d failed: %s", attempt, reason)
            if attempt < self._attempts:
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        return reason


def summarized(job: SummaryJob, verdict: Verdict, model: str, now: datetime) -> CallSummarized:
    return CallSummarized(
        tenant_id=job.tenant_id,
        call_id=job.call_id,
        seq=1,
        event_id=derive_event_id(job.call_id, 1, "postcall.summary"),
        occurred_at=now,
        correlation_id=job.correlation_id,
        agent_id=job.agent_id,
        summary=verdict.summary,
        outcome_label=verdict.outcome_label,
        model=model,
    )


def summary_failed(
    job: SummaryJob, reason: str, attempts: int, model: str, now: datetime
) -> CallSummaryFailed:
    # The summary's seq with its own kind: a crash-replay re-derives the same id.
    return CallSummaryFailed(
        tenant_id=job.tenant_id,
        call_id=job.call_id,
        seq=1,
        event_id=derive_event_id(job.call_id, 1, "postcall.summary_failed"),
        occurred_at=now,
        correlation_id=job.correlation_id,
        agent_id=job.agent_id,
        reason=reason,
        attempts=attempts,
        model=model,
    )


def start_not_seen(unseen: StartNotSeen, model: str, now: datetime) -> CallSummaryFailed:
    """The failure of a call never seen to start: the agent, known from CallReceived only, left
    empty; the id is the model's failure's, so a replay re-derives it."""
    job = SummaryJob(
        tenant_id=unseen.tenant_id,
        call_id=unseen.call_id,
        agent_id=AgentId(""),
        correlation_id=unseen.correlation_id,
        turns=[],
    )
    return summary_failed(job, START_NOT_SEEN, 0, model, now)
