"""A faust-streaming app's table survives a worker restart by recovering from its changelog."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.settings import Settings
from tests.integration.helpers import drain, fresh_topic

ROOT = Path(__file__).parents[2]


def _start_worker(settings: Settings, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "faust", "-A", "tests.integration.faust_counter_app", "worker"]
    argv += ["-l", "info", "--without-web"]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env=os.environ | env | {"PYTHONPATH": str(ROOT)}, stdout=out, stderr=out
        )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


async def _send(settings: Settings, topic: str, count: int) -> None:
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for _ in range(count):
            await producer.send_and_wait(topic, b"tick", key=b"calls")
    finally:
        await producer.stop()


async def _append_updates(settings: Settings, changelog: str, values: list[int]) -> None:
    """Append table updates to the changelog as one multi-record batch, as a busy worker does.

    Tansu reports such a changelog's end as the batch's base offset + 1 (see
    ``infra.eventlog.reading.end_offsets``); Faust recovering up to that answer dropped the
    batch's later updates until ``streams.faust_transport`` asked for the true end.
    """
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        batch = producer.create_batch()
        for value in values:
            batch.append(key=b'"calls"', value=str(value).encode(), timestamp=None)  # Faust's json key
        await producer.send_batch(batch, changelog, partition=0)
    finally:
        await producer.stop()


async def _counts(consumer: AIOKafkaConsumer, outputs: int, log: Path) -> list[int]:
    try:
        seen = await drain(consumer, lambda got: len(got) >= outputs, 90)
    except TimeoutError:
        ends = await asyncio.to_thread(log.read_text)
        raise AssertionError(
            f"no {outputs} counts within 90 s; the worker's log ends:\n{ends[-4000:]}"
        ) from None
    return [int(m.value or b"0") for m in seen]


async def _wait_for_commit(settings: Settings, group: str, topic: str, offset: int) -> None:
    """Wait until the worker has committed its input offset (its commit interval is short)."""
    # A group member that never subscribes can still fetch the group's committed offsets.
    probe = make_consumer(settings.kafka, group_id=group)
    await probe.start()
    try:
        for _ in range(300):
            committed = await probe.committed(TopicPartition(topic, 0))
            if committed is not None and committed >= offset:
                return
            await asyncio.sleep(0.1)
    finally:
        await probe.stop()
    raise AssertionError(f"worker never committed offset {offset} of {topic}")


async def test_table_recovers_from_changelog_after_worker_restart(settings: Settings, tmp_path: Path) -> None:
    source = await fresh_topic(settings.kafka, "faust-src")
    out = await fresh_topic(settings.kafka, "faust-out")
    env = {
        "COUNTER_APP_ID": f"counter-{uuid.uuid4().hex[:6]}",
        "COUNTER_BOOTSTRAP": settings.kafka.bootstrap or "",
        "COUNTER_SOURCE": source,
        "COUNTER_OUT": out,
        "COUNTER_DATADIR": str(tmp_path / "faust-data"),
    }
    consumer = make_consumer(settings.kafka, out, group_id=None)
    await consumer.start()
    log = tmp_path / "faust.log"
    try:
        worker = _start_worker(settings, env, log)
        try:
            await _send(settings, source, 3)
            first = await _counts(consumer, outputs=3, log=log)
            await _wait_for_commit(settings, env["COUNTER_APP_ID"], source, offset=3)
        finally:
            _stop_worker(worker)
        await _append_updates(settings, f"{env['COUNTER_APP_ID']}-counts-changelog", [4, 5, 6])
        worker = _start_worker(settings, env, log)
        try:
            await _send(settings, source, 2)
            second = await _counts(consumer, outputs=2, log=log)
        finally:
            _stop_worker(worker)
    finally:
        await consumer.stop()

    assert first == [1, 2, 3], log.read_text()[-2000:]
    # The whole changelog is recovered, the appended batch's last update (6) included, so the
    # count carries on from it rather than from 4 (the batch's first) or from 1.
    assert second[0] == 7, f"table did not recover its changelog to the end: {second}"
    assert second == list(range(second[0], second[0] + len(second)))
