"""A dial Twilio took and never answered is recorded as failed and never dialled again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.codec import Codec
from schemas.dialer import CallAttemptRecorded, CallDialFailed, CallRequestCompleted
from streams.dialer.shell import DialerShell
from streams.telephony.twilio_rest import TwilioTelephony
from tests.unit.dialer.dialer_scenario import OPTIONS, place, published
from tests.unit.telephony.test_twilio_rest_place import SID, silent_api

CODEC = Codec.single_object()


class Broker:
    """Takes every record at once and keeps it, decoded."""

    def __init__(self) -> None:
        self.taken: list[object] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.taken.append(CODEC.decode(value))

    async def send_and_wait(self, topic: str, key: bytes, value: bytes) -> None:
        await self.send(topic, key, value)


async def test_a_create_that_timed_out_after_it_was_sent_is_not_dialled_again() -> None:
    broker = Broker()
    async with silent_api(answer_after_s=2.0) as (base_url, received):
        telephony = TwilioTelephony(
            SID, "token", "https://edge.example", api_base_url=base_url, timeout_s=0.3
        )
        shell = DialerShell(CODEC, OPTIONS, telephony, send=broker.send, send_and_wait=broker.send_and_wait)
        shell.rebuild([published()])
        await shell.apply(place("c1"))
        await shell.drain()
        (report,) = [r for r in broker.taken if isinstance(r, CallDialFailed)]
        await shell.apply(report)  # the report comes back to the dialer as an input
        await shell.tick(datetime.now(UTC) + timedelta(hours=1))  # long past any back-off
        await shell.drain()
        await telephony.aclose()
    assert len(received) == 1
    assert not report.retryable
    (attempt,) = [r for r in broker.taken if isinstance(r, CallAttemptRecorded)]
    assert (attempt.outcome, attempt.retry_at) == ("error", None)
    assert "Twilio may have placed the call" in (attempt.detail or "")
    assert [r.outcome for r in broker.taken if isinstance(r, CallRequestCompleted)] == ["failed"]
