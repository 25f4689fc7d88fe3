"""The shell's ticks reach every tenant with something to act on, not only those with a queue."""

from __future__ import annotations

from datetime import timedelta

from schemas.codec import Codec
from schemas.dialer import CallAttemptRecorded
from streams.dialer.shell import DialerShell
from tests.unit.dialer.dialer_scenario import OPTIONS, T0, TENANT, place, published
from tests.unit.dialer.test_dialer_shell_writes import Journal


async def test_a_lost_attempt_is_reaped_when_its_tenant_has_nothing_queued() -> None:
    journal = Journal()
    shell = DialerShell(
        Codec.single_object(), OPTIONS, journal, send=journal.send, send_and_wait=journal.send_and_wait
    )
    shell.rebuild([published(max_duration_s=600)])
    await shell.apply(place("lost"))
    await shell.drain()
    state = shell.state(TENANT)
    assert list(state.live) == ["lost"]
    assert not state.queue
    await shell.tick(T0 + timedelta(hours=10))  # no outcome long past max duration + slack
    assert state.live == {}
    assert state.requests == {}


async def test_a_live_attempt_is_kept_until_it_is_due_to_be_reaped() -> None:
    journal = Journal()
    sent: list[object] = []
    codec = Codec.single_object()

    async def send(topic: str, key: bytes, value: bytes) -> None:
        sent.append(codec.decode(value))

    shell = DialerShell(codec, OPTIONS, journal, send=send, send_and_wait=journal.send_and_wait)
    shell.rebuild([published(max_duration_s=600)])
    await shell.apply(place("live"))
    await shell.drain()
    await shell.tick(T0 + timedelta(seconds=600))
    assert list(shell.state(TENANT).live) == ["live"]
    assert not any(isinstance(record, CallAttemptRecorded) for record in sent)
