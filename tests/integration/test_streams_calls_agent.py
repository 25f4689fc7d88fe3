"""The calls agent over the real broker: a call's inputs become its event log, crash included."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.settings import Settings
from schemas.call_media import MediaStreamStarted, MediaStreamStopped
from schemas.calls import (
    CallEnded,
    CallEvent,
    CallReceived,
    ClockTicked,
    EndCall,
    HangUpRequested,
    ToolCallRequested,
)
from schemas.catalog import CALL_EVENTS, CALL_INPUTS
from schemas.codec import Codec
from schemas.ids import AgentId, CallId, CorrelationId, EventId, TenantId
from streams.calls.timers import SILENCE_CHECK_IN_TOOL
from tests.integration.helpers import drain, start_group_at_end

ROOT = Path(__file__).parents[2]
CODEC = Codec.single_object()


def _worker_env(settings: Settings, app_id: str, data_dir: Path) -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": str(ROOT),
        "VOICE_ENV": "test",
        "VOICE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
        "VOICE_KAFKA__PARTITIONS_OVERRIDE": str(settings.kafka.partitions_override or ""),
        "VOICE_STREAMS__APP_ID": app_id,
        "VOICE_STREAMS__SESSION_TIMEOUT_S": "2.5",
        "VOICE_STREAMS__HEARTBEAT_INTERVAL_S": "0.4",
        "VOICE_STREAMS__REBALANCE_TIMEOUT_S": "5",
        "VOICE_DATA_DIR": str(data_dir),
    }


def _envelope(call_id: CallId, t: float) -> dict[str, Any]:
    now = datetime.now(UTC) + timedelta(seconds=t)
    return {
        "tenant_id": TenantId("tenant-it"),
        "call_id": call_id,
        "seq": 0,
        "event_id": EventId(str(uuid.uuid4())),
        "occurred_at": now,
        "correlation_id": CorrelationId(f"corr-{call_id}"),
    }


def _inputs(call_id: CallId) -> list[Any]:
    received = CallReceived(
        **_envelope(call_id, 0),
        direction="inbound",
        from_number="+15550001",
        to_number="+15550002",
        agent_id=AgentId("agent-it"),
        agent_version=1,
        max_duration_s=600,
        silence_timeout_s=0,
    )
    started = MediaStreamStarted(
        **_envelope(call_id, 0.1),
        stream_sid="MZ-it",
        twilio_call_sid="CA-it",
        edge_id="edge-it",
        bridge_url="ws://127.0.0.1:1/bridge",
        bridge_token="token",
        token_expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    end = EndCall(**_envelope(call_id, 0.2), requested_by="operator", reason="operator_ended")
    stopped = MediaStreamStopped(
        **_envelope(call_id, 0.3),
        stream_sid="MZ-it",
        reason="twilio_stop",
        frames_received=100,
        frames_gaps=0,
        frames_dropped=0,
    )
    return [received, started, end, stopped]


async def _send_inputs(settings: Settings, records: list[Any]) -> None:
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(CALL_INPUTS.name, CODEC.encode(record), record.call_id.encode())
    finally:
        await producer.stop()


def _start(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out, stderr=out)


async def test_a_crash_between_send_and_table_update_re_emits_identical_events(
    settings: Settings, tmp_path: Path
) -> None:
    call_id = CallId(f"call-{uuid.uuid4().hex[:10]}")
    app_id = f"calls-{uuid.uuid4().hex[:6]}"
    await start_group_at_end(settings.kafka, app_id, CALL_INPUTS.name)
    env = _worker_env(settings, app_id, tmp_path)
    crash_env = env | {"CRASH_CALL_ID": call_id, "CRASH_MARKER": str(tmp_path / "crashed")}
    log = tmp_path / "worker.log"
    events = make_consumer(settings.kafka, group_id=None)
    await events.start()
    partitions = [
        TopicPartition(CALL_EVENTS.name, p) for p in events.partitions_for_topic(CALL_EVENTS.name) or ()
    ]
    events.assign(partitions)
    await events.seek_to_end(*partitions)
    worker = _start("tests.integration.streams_crashing_worker", crash_env, log)
    try:
        await _send_inputs(settings, _inputs(call_id))
        worker.wait(timeout=90)
        assert (tmp_path / "crashed").exists(), log.read_text()[-3000:]
        worker = _start("streams", env, log)

        def ended(seen: list[Any]) -> bool:
            return any(
                m.key == call_id.encode() and isinstance(CODEC.decode(m.value), CallEnded) for m in seen
            )

        received = await drain(events, ended, timeout_s=90)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await events.stop()

    mine = [m.value for m in received if m.key == call_id.encode() and m.value]
    log_events: list[CallEvent] = [CODEC.decode(v) for v in mine]  # type: ignore[misc]
    by_id: dict[str, bytes] = {}
    for value, event in zip(mine, log_events, strict=True):
        assert by_id.setdefault(event.event_id, value) == value, "a re-emitted event differs"
    unique = {event.event_id: event for event in log_events}.values()
    assert len(mine) > len(unique), "the crash should have re-emitted at least one event"
    assert sorted(e.seq for e in unique) == list(range(1, len(unique) + 1))
    kinds = [type(e) for e in sorted(unique, key=lambda e: e.seq)]
    assert kinds[0] is CallReceived
    assert HangUpRequested in kinds
    assert kinds[-1] is CallEnded
    assert dataclasses.replace(log_events[0]).call_id == call_id


async def test_an_ended_call_is_forgotten_after_the_retention(settings: Settings, tmp_path: Path) -> None:
    call_id = CallId(f"call-{uuid.uuid4().hex[:10]}")
    app_id = f"calls-{uuid.uuid4().hex[:6]}"
    await start_group_at_end(settings.kafka, app_id, CALL_INPUTS.name)
    env = _worker_env(settings, app_id, tmp_path) | {
        "VOICE_STREAMS__ENDED_CALL_RETENTION_S": "1",
        "VOICE_STREAMS__SESSIONS_ENABLED": "false",
    }
    log = tmp_path / "worker.log"
    changelog = f"{app_id}-call-state-changelog"
    worker = _start("streams", env, log)
    probe = make_consumer(settings.kafka, group_id=None)
    await probe.start()
    try:
        for _ in range(300):  # the worker creates its changelog when it starts
            if changelog in await probe.topics():
                break
            await asyncio.sleep(0.1)
    finally:
        await probe.stop()
    states = make_consumer(settings.kafka, group_id=None)  # its start-up metadata has the changelog
    await states.start()
    try:
        partitions = [TopicPartition(changelog, p) for p in states.partitions_for_topic(changelog) or ()]
        assert partitions, log.read_text()[-3000:]
        states.assign(partitions)
        await states.seek_to_beginning(*partitions)
        await _send_inputs(settings, _inputs(call_id))

        def forgotten(seen: list[Any]) -> bool:
            mine = [m.value for m in seen if m.key == call_id.encode()]
            return len(mine) > 1 and mine[-1] is None

        seen = await drain(states, forgotten, timeout_s=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await states.stop()
    mine = [m.value for m in seen if m.key == call_id.encode()]
    assert all(value is not None for value in mine[:-1])  # kept while live and for the retention


async def test_the_clock_sends_a_tick_only_when_a_timer_fires(settings: Settings, tmp_path: Path) -> None:
    # Silence of 2 s: a spoken check-in, then 2 s later the hang-up. Two ticks, not one a second.
    call_id = CallId(f"call-{uuid.uuid4().hex[:10]}")
    app_id = f"calls-{uuid.uuid4().hex[:6]}"
    await start_group_at_end(settings.kafka, app_id, CALL_INPUTS.name)
    env = _worker_env(settings, app_id, tmp_path) | {"VOICE_STREAMS__SESSIONS_ENABLED": "false"}
    received, started, *_ = _inputs(call_id)
    log = tmp_path / "worker.log"
    watch = make_consumer(settings.kafka, group_id=None)
    await watch.start()
    topics = (CALL_EVENTS.name, CALL_INPUTS.name)
    partitions = [TopicPartition(t, p) for t in topics for p in watch.partitions_for_topic(t) or ()]
    watch.assign(partitions)
    await watch.seek_to_end(*partitions)
    worker = _start("streams", env, log)
    try:
        await _send_inputs(settings, [dataclasses.replace(received, silence_timeout_s=2), started])

        def hung_up(seen: list[Any]) -> bool:
            return any(
                m.topic == CALL_EVENTS.name and m.key == call_id.encode()
                and isinstance(CODEC.decode(m.value), HangUpRequested)
                for m in seen
            )  # fmt: skip

        seen = await drain(watch, hung_up, timeout_s=90)
        settle = asyncio.get_running_loop().time() + 3  # and any tick sent after it
        while asyncio.get_running_loop().time() < settle:
            for records in (await watch.getmany(timeout_ms=200)).values():
                seen.extend(records)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await watch.stop()
    mine = [(m.topic, CODEC.decode(m.value)) for m in seen if m.key == call_id.encode()]
    ticks = [r for topic, r in mine if topic == CALL_INPUTS.name and isinstance(r, ClockTicked)]
    events = [r for topic, r in mine if topic == CALL_EVENTS.name]
    check_ins = [e for e in events if isinstance(e, ToolCallRequested) and e.name == SILENCE_CHECK_IN_TOOL]
    assert len(check_ins) == 1, log.read_text()[-3000:]
    hang_up = next(e for e in events if isinstance(e, HangUpRequested))
    assert hang_up.reason == "silence_timeout"
    assert len(ticks) == 2, [t.now for t in ticks]
