"""Post-call workers restarted while calls are in progress: every call still gets its summary and webhook."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from infra.settings import Settings
from schemas.calls import CallEvent, CallReceived
from schemas.catalog import CALL_EVENTS
from schemas.codec import Codec
from schemas.dialer import CallSummarized, CallSummaryFailed
from schemas.ids import CallId
from streams.call_events_runner import CallEventsRunner, Job
from streams.dialer.policy import RetryPolicy
from streams.post_call_offsets import FORGET_SLACK
from streams.summary.runner import START_NOT_SEEN, SummaryWorker
from streams.webhooks.runner import WebhookWorker
from tests.support.call_stream import T0, call_events
from tests.unit.dialer.dialer_scenario import AGENT, TENANT, published

R = TypeVar("R")
P0 = TopicPartition(CALL_EVENTS.name, 0)
CODEC = Codec.single_object()
URL = "https://hooks.example.com/calls"


def _interleaved() -> list[CallEvent]:
    """Call B starts, then A; B ends (with its transcript) while A is still talking; then A ends."""
    a = call_events(TENANT, "call-a", AGENT, start=T0 + timedelta(seconds=1))
    b = call_events(TENANT, "call-b", AGENT)
    return [b[0], a[0], *b[1:], *a[1:]]


class _Producer:
    def __init__(self) -> None:
        self.written: list[object] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        self.written.append(CODEC.decode(value))


class _Committed:
    """A consumer group's commit of P0, as the broker keeps it."""

    def __init__(self, offset: int | None = None) -> None:
        self.offset = offset

    def assignment(self) -> set[TopicPartition]:
        return {P0}

    def assign(self, partitions: list[TopicPartition]) -> None:
        return None

    def pause(self, *partitions: TopicPartition) -> None:
        return None

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.offset = offsets[P0].offset

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.offset


class _Group(_Committed):
    """The worker's group, and ``read``: the group its notes of how far it had read are kept in."""

    def __init__(self, offset: int | None = None, noted: int | None = None) -> None:
        super().__init__(offset)
        self.read = _Committed(noted)


class _Process:
    """One life of a worker: assigned P0, it reads on from the group's commit and commits."""

    def __init__(
        self, group: _Group, on_call: Callable[[object], Sequence[Job]], forget: Callable[[CallId], None]
    ) -> None:
        self.group, self.notes, self.producer = group, group.read, _Producer()
        self.runner = CallEventsRunner(
            Settings(env="test"),
            group_id="g",
            on_agent=lambda _: None,
            on_call=on_call,
            on_forget=forget,
            fetch_max_wait_ms=10,
        )

    async def read(self, log: Sequence[CallEvent], until: int) -> None:
        self.runner._assigned({P0})
        assert await self.runner._resume(self.notes, P0, asyncio.Event())
        start = self.group.offset or 0
        for offset in range(start, until):
            self.runner._read_call_event(P0, offset, CODEC.encode(log[offset]), self.producer)
            await asyncio.gather(*self.runner._tasks)
        await self.runner._commit(self.group, self.notes)


def _summary_process(group: _Group) -> _Process:
    async def model(prompt: str) -> str:
        return json.dumps({"summary": f"Summary of {prompt.count(':')} lines."})

    worker = SummaryWorker(Settings(env="test"), model, model="m")
    return _Process(group, worker._on_call, worker.tracker.forget)


def _of(process: _Process, kind: type[R]) -> list[R]:
    return [r for r in process.producer.written if isinstance(r, kind)]


async def test_a_call_in_progress_when_the_summary_worker_restarts_is_still_summarised() -> None:
    log, group = _interleaved(), _Group()
    a_ends = len(log) - 1
    before = _summary_process(group)
    await before.read(log, a_ends)
    assert [s.call_id for s in _of(before, CallSummarized)] == ["call-b"]
    after = _summary_process(group)  # a deploy, a crash or a rebalance
    await after.read(log, len(log))
    assert [s.call_id for s in _of(after, CallSummarized)] == ["call-a"]
    # B's end, read again after the restart without its start, was already handled: no failure.
    assert _of(after, CallSummaryFailed) == []
    assert group.offset == len(log)


class _Endpoint:
    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.received.append((body["type"], body["data"]["call_id"]))
        return httpx.Response(204)


def _webhook_process(group: _Group, client: httpx.AsyncClient) -> tuple[_Process, WebhookWorker]:
    policy = RetryPolicy(max_attempts=1, base_s=0.01, factor=1.0, cap_s=0.01)
    worker = WebhookWorker(Settings(env="test"), "secret", policy, allow_private=True)
    worker.planner.observe_agent(published(webhook_urls=(URL,)))
    return _Process(group, lambda event: worker._jobs(client, event), worker.planner.forget), worker


async def test_a_call_in_progress_when_the_webhook_worker_restarts_still_gets_its_call_ended() -> None:
    log, group, endpoint = _interleaved(), _Group(), _Endpoint()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        before, _ = _webhook_process(group, client)
        await before.read(log, len(log) - 1)
        endpoint.received.clear()
        after, worker = _webhook_process(group, client)
        await after.read(log, len(log))
    assert ("call.ended", "call-a") in endpoint.received
    assert ("call.ended", "call-b") not in endpoint.received  # delivered before the restart
    assert worker.starts_missed == 0


async def test_an_end_whose_start_was_committed_past_is_recorded_and_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A commit from before this fix (with no note of how far it had read): call A's start is behind it.
    log = _interleaved()
    summary = _summary_process(_Group(len(log) - 1))
    endpoint = _Endpoint()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        hooks, worker = _webhook_process(_Group(len(log) - 1), client)
        with caplog.at_level(logging.WARNING):
            await summary.read(log, len(log))
            await hooks.read(log, len(log))
    (failed,) = _of(summary, CallSummaryFailed)
    assert (failed.call_id, failed.reason, failed.attempts) == ("call-a", START_NOT_SEEN, 0)
    assert failed.tenant_id == TENANT
    assert endpoint.received == []
    assert worker.starts_missed == 1
    assert any("call-a" in r.getMessage() and r.name == "streams.webhooks.runner" for r in caplog.records)


async def test_a_call_that_never_ends_stops_holding_the_commit_after_its_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stuck = call_events(TENANT, "call-stuck", AGENT)[0]
    assert isinstance(stuck, CallReceived)
    stuck = replace(stuck, max_duration_s=300)
    later = call_events(TENANT, "call-later", AGENT, start=T0 + timedelta(seconds=300) + FORGET_SLACK)
    log, group = [stuck, *later], _Group()
    process = _summary_process(group)
    with caplog.at_level(logging.WARNING):
        await process.read(log, len(log))
    assert group.offset == len(log)
    assert any("call-stuck" in r.getMessage() and "forgotten" in r.getMessage() for r in caplog.records)
