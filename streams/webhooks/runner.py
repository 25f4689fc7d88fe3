"""The webhook worker: call events in, signed deliveries out, offsets committed behind them.

Runs on ``CallEventsRunner`` (its own consumer group on ``voice.calls.events.v1``), with the
agents' webhook URLs from their published versions and one job per delivery. A crash
re-delivers: at least once, and receivers de-duplicate by ``X-Voice-Delivery``. A call that ends
with its start never seen gets no ``call.ended`` (its agent and numbers are unknown): a warning
with the call id, counted in ``starts_missed``.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import httpx

from infra.settings import Settings
from schemas.agents import AgentVersionPublished
from schemas.calls import CallEnded, CallFailed, CallReceived
from schemas.ids import AgentId, CallId
from streams.call_events_runner import CallEventsRunner, Job, Publish
from streams.dialer.policy import RetryPolicy
from streams.webhooks.delivery import Webhook, deliver

log = logging.getLogger(__name__)


class HookPlanner:
    """Which webhooks a call event causes, from the agents' URLs and the calls seen so far."""

    def __init__(self) -> None:
        self.urls: dict[AgentId, tuple[str, ...]] = {}
        self._calls: dict[CallId, CallReceived] = {}

    def observe_agent(self, fact: AgentVersionPublished) -> None:
        self.urls[fact.agent_id] = fact.config.webhook_urls

    def forget(self, call_id: CallId) -> None:
        self._calls.pop(call_id, None)

    def start_missed(self, event: object) -> bool:
        """Whether ``event`` ends a call whose start was never seen."""
        return isinstance(event, CallEnded | CallFailed) and event.call_id not in self._calls

    def plan(self, event: object) -> list[Webhook]:
        if isinstance(event, CallReceived):
            self._calls[event.call_id] = event
            return self._hooks(event, "call.started", {})
        if isinstance(event, CallEnded | CallFailed):
            received = self._calls.pop(event.call_id, None)
            if received is None:
                return []
            outcome = {"reason": event.reason, "ended_at": event.occurred_at.isoformat()}
            if isinstance(event, CallFailed):
                outcome["failed"] = "true"
            return self._hooks(received, "call.ended", outcome)
        return []

    def _hooks(self, call: CallReceived, event_type: str, extra: dict[str, Any]) -> list[Webhook]:
        payload = {
            "call_id": call.call_id,
            "tenant_id": call.tenant_id,
            "agent_id": call.agent_id,
            "direction": call.direction,
            "from": call.from_number,
            "to": call.to_number,
            "transcript_url": f"/api/calls/{call.call_id}/transcript",
            **extra,
        }
        return [
            Webhook(
                tenant_id=call.tenant_id,
                agent_id=call.agent_id,
                call_id=call.call_id,
                url=url,
                event_type=event_type,
                payload=payload,
            )
            for url in self.urls.get(call.agent_id, ())
        ]


class WebhookWorker:
    """Delivers the webhooks the planner says each call event causes."""

    def __init__(
        self,
        settings: Settings,
        secret: str,
        policy: RetryPolicy,
        group_id: str = "voice-webhooks",
        *,
        allow_private: bool = False,
    ) -> None:
        self._settings = settings
        self._allow_private = allow_private
        self._secret = secret
        self._policy = policy
        self._group = group_id
        self.planner = HookPlanner()
        self.starts_missed = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient() as client:
            runner = CallEventsRunner(
                self._settings,
                group_id=self._group,
                on_agent=self.planner.observe_agent,
                on_call=partial(self._jobs, client),
                on_forget=self.planner.forget,
                fetch_max_wait_ms=self._settings.kafka.fetch_waits.webhooks,
            )
            await runner.run(stop)

    def _jobs(self, client: httpx.AsyncClient, event: object) -> list[Job]:
        if self.planner.start_missed(event):
            self.starts_missed += 1
            log.warning(
                "call %s ended, but its start was not seen (the worker restarted past it, or forgot"
                " the call when it outlasted its maximum duration): no call.ended webhook (%d so far)",
                getattr(event, "call_id", "?"),
                self.starts_missed,
            )
            return []
        return [
            Job(f"webhook {hook.event_type} to {hook.url}", partial(self._deliver, hook, client))
            for hook in self.planner.plan(event)
        ]

    async def _deliver(self, hook: Webhook, client: httpx.AsyncClient, publish: Publish) -> None:
        await deliver(hook, client, self._secret, self._policy, publish, allow_private=self._allow_private)
