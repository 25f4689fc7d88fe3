"""A broker outage while a call is being dialled is waited out (ADR 12), never taken for a failed dial."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from schemas.calls import CallReceived, TelephonyStatusChanged
from schemas.catalog import CALL_INPUTS, DIALER_REQUESTS
from schemas.codec import Codec
from schemas.dialer import CallDialFailed, CallDialled
from streams.dialer.shell import DialerShell
from streams.telephony.port import DialError, DialRequest
from tests.unit.dialer.dialer_scenario import OPTIONS, TENANT, place, published
from tests.unit.dialer.test_dialer_shell_writes import Journal

CODEC = Codec.single_object()


class FlakyBroker(Journal):
    """Refuses the next ``failures[topic]`` awaited sends to a topic with ``error``; keeps what it took."""

    def __init__(self, failures: dict[str, int], error: Exception | None = None) -> None:
        super().__init__()
        self.failures = dict(failures)
        self.error = error or KafkaConnectionError("broker away")
        self.taken: list[object] = []
        self.dial_error: DialError | None = None

    async def send_and_wait(self, topic: str, key: bytes, value: bytes) -> None:
        if self.failures.get(topic, 0) > 0:
            self.failures[topic] -= 1
            raise self.error
        await super().send_and_wait(topic, key, value)
        self.taken.append(CODEC.decode(value))

    async def place(self, request: DialRequest) -> str:
        if self.dial_error is not None:
            raise self.dial_error
        return await super().place(request)


def _shell(broker: FlakyBroker) -> DialerShell:
    shell = DialerShell(
        CODEC, OPTIONS, broker, send=broker.send, send_and_wait=broker.send_and_wait, send_backoff_s=(0.001,)
    )
    shell.rebuild([published()])
    return shell


def _placed(broker: Journal) -> list[tuple[str, str]]:
    return [entry for entry in broker.entries if entry[0] == "place"]


async def test_a_broker_blip_on_the_call_s_creation_delays_the_dial_and_fails_nothing() -> None:
    broker = FlakyBroker({CALL_INPUTS.name: 1})
    shell = _shell(broker)
    await shell.apply(place("blip"))
    await shell.drain()
    assert _placed(broker) == [("place", "blip")]
    reported = [type(r) for r in broker.taken if isinstance(r, CallReceived | CallDialled | CallDialFailed)]
    assert reported == [CallReceived, CallDialled]


async def test_a_dial_failure_reported_through_an_outage_still_reaches_the_dialer() -> None:
    broker = FlakyBroker({DIALER_REQUESTS.name: 3})
    broker.dial_error = DialError("Twilio busy", code=20429, status=429, retryable=True)
    shell = _shell(broker)
    await shell.apply(place("retry"))
    await shell.drain()
    (report,) = [r for r in broker.taken if isinstance(r, CallDialFailed)]
    assert report.retryable
    assert any(isinstance(r, TelephonyStatusChanged) and r.status == "failed" for r in broker.taken)
    events = await shell.apply(report)
    assert "retry" not in shell.state(TENANT).live  # the slot is free, the request waits for its retry
    assert [getattr(e, "retry_at", None) is not None for e in events] == [True]


async def test_a_call_the_broker_refuses_for_itself_is_a_failed_dial_not_a_stuck_one() -> None:
    broker = FlakyBroker({CALL_INPUTS.name: 1}, error=MessageSizeTooLargeError())
    shell = _shell(broker)
    await shell.apply(place("huge"))
    await shell.drain()
    assert _placed(broker) == []
    (report,) = [r for r in broker.taken if isinstance(r, CallDialFailed)]
    assert not report.retryable
