"""Odd but correctly signed Twilio webhook bodies: nothing they carry may be lost or merged.

Built like tests/unit/edge/test_edge_app.py: the real app with a recording publisher; each fact the
webhook publishes is then put through the real codec, as KafkaFactPublisher would before sending it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from edge.app import MAX_WEBHOOK_BYTES, create_app, status_time
from edge.node import EdgeNode
from edge.publisher import RecordingPublisher
from edge.routing import RoutingTable
from edge.telephony import RecordingTelephony
from infra.settings import Settings
from schemas.calls import CallReceived, TelephonyStatusChanged
from schemas.codec import Codec
from tests.support.agents import agent_config, version_published

TOKEN = "unit-test-token"
BASE = "https://edge.example.com"


def _client(routing: RoutingTable | None = None) -> tuple[TestClient, RecordingPublisher]:
    settings = Settings(env="test")
    twilio = settings.twilio.model_copy(update={"auth_token": SecretStr(TOKEN), "public_base_url": BASE})
    settings = settings.model_copy(update={"twilio": twilio})
    publisher = RecordingPublisher()
    node = EdgeNode(settings, publisher=publisher, telephony=RecordingTelephony(), routing=routing)
    node.ready = True
    app = create_app(settings, publisher=publisher, telephony=node.telephony, node=node)
    return TestClient(app, base_url=BASE), publisher


def _post(client: TestClient, path: str, form: dict[str, str]) -> int:
    url = BASE + path
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    return client.post(url, data=form, headers={"X-Twilio-Signature": signature}).status_code


@pytest.mark.parametrize("field", ["SequenceNumber", "CallDuration", "SipResponseCode"])
def test_status_callback_with_an_out_of_range_number_does_not_lose_the_status(field: str) -> None:
    """A number beyond the log's ``long`` is read as absent, as a non-number is: kept, it made the
    whole fact unencodable, and KafkaFactPublisher dropped the status after answering 204."""
    client, publisher = _client()
    form = {"CallSid": "CA1", "CallStatus": "completed", field: "99999999999999999999"}
    # Twilio does not retry a status callback answered 4xx: refusing it would lose the status too.
    assert _post(client, "/twilio/status", form) == 204
    (fact,) = publisher.records
    assert isinstance(fact, TelephonyStatusChanged)
    assert fact.status == "completed"
    read = {
        "SequenceNumber": fact.sequence_number,
        "CallDuration": fact.duration_s,
        "SipResponseCode": fact.sip_response_code,
    }
    assert read[field] is None
    Codec.single_object().encode(fact)  # raises EncodeError: the 'completed' status would be lost


def test_voice_webhook_without_callsid_does_not_give_two_calls_one_id() -> None:
    routing = RoutingTable()
    routing.apply(version_published("t1", "a1", agent_config("+15550001111"), version=1))
    client, publisher = _client(routing)
    for caller in ("+12025550101", "+12025550102"):
        assert _post(client, "/twilio/voice", {"From": caller, "To": "+15550001111"}) == 200
    received = [r for r in publisher.records if isinstance(r, CallReceived)]
    assert len({r.call_id for r in received}) == len(received), (
        "two different calls without CallSid were both admitted under call id " + received[0].call_id
    )


def test_a_webhook_body_past_the_cap_is_refused_before_its_signature_is_checked() -> None:
    client, publisher = _client()
    form = {"CallSid": "CA1", "CallStatus": "completed", "Padding": "x" * (MAX_WEBHOOK_BYTES + 1)}
    url = BASE + "/twilio/status"
    response = client.post(url, data=form, headers={"X-Twilio-Signature": "not-checked"})
    assert response.status_code == 413
    assert publisher.records == []


RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("Wed, 01 May 2024 11:59:30 +0000", datetime(2024, 5, 1, 11, 59, 30, tzinfo=UTC)),
        ("Wed, 01 May 2024 13:59:30 +0200", datetime(2024, 5, 1, 11, 59, 30, tzinfo=UTC)),
        ("Wed, 01 May 2024 12:00:40 -0000", datetime(2024, 5, 1, 12, 0, 40, tzinfo=UTC)),
        ("Wed, 01 May 2024 12:05:00 +0000", RECEIVED),  # in the future
        ("Mon, 01 Jan 1990 00:00:00 +0000", RECEIVED),  # absurdly old
        ("Wed, 99 May 2024 11:59:30 +0000", RECEIVED),
        ("yesterday", RECEIVED),
        (None, RECEIVED),
    ],
)
def test_a_status_change_happened_when_twilio_says_if_that_is_plausible(
    timestamp: str | None, expected: datetime
) -> None:
    assert status_time(timestamp, RECEIVED) == expected


def test_status_callback_carries_twilios_timestamp() -> None:
    client, publisher = _client()
    sent_at = format_datetime(datetime.now(UTC) - timedelta(seconds=30))  # a callback arriving late
    form = {"CallSid": "CA9", "CallStatus": "completed", "Timestamp": sent_at}
    assert _post(client, "/twilio/status", form) == 204
    (fact,) = publisher.records
    assert isinstance(fact, TelephonyStatusChanged)
    assert fact.occurred_at == parsedate_to_datetime(form["Timestamp"])
