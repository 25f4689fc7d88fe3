"""SerialPerKey: one job at a time per key, keys overlap, a bound on jobs in flight."""

from __future__ import annotations

import asyncio

import pytest

from streams.calls.serial import Job, SerialPerKey


def _recording(log: list[str], name: str, gate: asyncio.Event | None = None) -> Job:
    async def job() -> None:
        log.append(f"start {name}")
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0)
        log.append(f"end {name}")

    return job


async def test_a_keys_jobs_run_one_after_another_in_submission_order() -> None:
    serial, log = SerialPerKey(limit=10), []
    gate = asyncio.Event()
    await serial.submit("call-1", _recording(log, "a", gate))
    await serial.submit("call-1", _recording(log, "b"))
    await serial.submit("call-1", _recording(log, "c"))
    await asyncio.sleep(0.01)
    assert log == ["start a"]  # b waits for a, however long a takes
    gate.set()
    await serial.idle()
    assert log == ["start a", "end a", "start b", "end b", "start c", "end c"]


async def test_different_keys_overlap() -> None:
    serial, log = SerialPerKey(limit=10), []
    gate = asyncio.Event()
    await serial.submit("call-1", _recording(log, "slow", gate))
    await serial.submit("call-2", _recording(log, "fast"))
    await asyncio.sleep(0.01)
    assert log == ["start slow", "start fast", "end fast"]  # not held up by call-1
    gate.set()
    await serial.idle()
    assert serial.in_flight == 0


async def test_submit_waits_while_the_limit_is_reached() -> None:
    serial, log = SerialPerKey(limit=2), []
    gate = asyncio.Event()
    await serial.submit("a", _recording(log, "a", gate))
    await serial.submit("b", _recording(log, "b", gate))
    third = asyncio.create_task(serial.submit("c", _recording(log, "c")))
    await asyncio.sleep(0.01)
    assert not third.done()
    assert serial.in_flight == 2
    gate.set()
    await third
    await serial.idle()
    assert "end c" in log


async def test_a_failing_job_is_logged_and_the_keys_next_job_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serial, log = SerialPerKey(limit=4), []

    async def broken() -> None:
        raise RuntimeError("boom")

    await serial.submit("call-1", broken)
    await serial.submit("call-1", _recording(log, "next"))
    await serial.idle()
    assert log == ["start next", "end next"]
    assert "boom" in caplog.text
    assert serial.in_flight == 0
    # Every slot came back: the limit is not eaten by failures.
    for name in "wxyz":
        await asyncio.wait_for(serial.submit(name, _recording(log, name)), timeout=1)
    await serial.idle()


async def test_a_key_whose_jobs_are_done_starts_afresh() -> None:
    serial, log = SerialPerKey(limit=4), []
    await serial.submit("call-1", _recording(log, "first"))
    await serial.idle()
    await serial.submit("call-1", _recording(log, "second"))
    await serial.idle()
    assert log == ["start first", "end first", "start second", "end second"]


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SerialPerKey(limit=0)


async def test_cancelled_runners_give_back_the_slots_of_jobs_never_run() -> None:
    serial, log = SerialPerKey(limit=3), []
    gate = asyncio.Event()
    await serial.submit("call-1", _recording(log, "stuck", gate))
    await serial.submit("call-1", _recording(log, "never"))
    await serial.submit("call-1", _recording(log, "never either"))
    await asyncio.sleep(0.01)
    for runner in list(serial._runners):
        runner.cancel()
    await asyncio.sleep(0.01)
    assert serial.in_flight == 0
    assert log == ["start stuck"]
    # All three slots are free again.
    for name in "abc":
        await asyncio.wait_for(serial.submit(name, _recording(log, name)), timeout=1)
    await serial.idle()
