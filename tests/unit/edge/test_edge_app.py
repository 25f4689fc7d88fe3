"""Webhooks, routing and TwiML with fakes: no broker, no sockets beyond the in-process client."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi.testclient import TestClient
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from edge.app import create_app
from edge.node import AnsweredCalls, EdgeNode, call_id_for
from edge.publisher import RecordingPublisher
from edge.routing import Route, RoutingTable
from edge.telephony import RecordingTelephony
from edge.twiml import media_stream_url
from infra.settings import Settings
from schemas.agents import AgentArchived, AgentVersionPublished
from schemas.calls import CallReceived, TelephonyStatusChanged
from schemas.ids import AgentId, CorrelationId, EventId, TenantId
from tests.support.agents import agent_config, version_published

TOKEN = "unit-test-token"
BASE = "https://edge.example.com"


def _settings(**edge: object) -> Settings:
    settings = Settings(env="test")
    return settings.model_copy(
        update={
            "twilio": settings.twilio.model_copy(
                update={"auth_token": SecretStr(TOKEN), "public_base_url": BASE}
            ),
            "edge": settings.edge.model_copy(update=edge),
        }
    )


def _client(
    settings: Settings, routing: RoutingTable | None = None
) -> tuple[TestClient, RecordingPublisher, EdgeNode]:
    publisher = RecordingPublisher()
    node = EdgeNode(settings, publisher=publisher, telephony=RecordingTelephony(), routing=routing)
    node.ready = True
    app = create_app(settings, publisher=publisher, telephony=node.telephony, node=node)
    return TestClient(app, base_url=BASE), publisher, node


def _post(client: TestClient, path: str, form: dict[str, str], query: str = "") -> tuple[int, str]:
    url = BASE + path + (f"?{query}" if query else "")
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    response = client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    return response.status_code, response.text


def _published(number: str, agent_id: str = "a1", version: int = 2) -> AgentVersionPublished:
    config = agent_config(number, max_duration_s=60, silence_timeout_s=10)
    return version_published("t1", agent_id, config, version=version)


def test_routing_table_follows_published_versions_and_archives() -> None:
    table = RoutingTable()
    table.apply(_published("+1 555 000 1111"))
    assert table.lookup("+15550001111") == Route(
        tenant_id="t1", agent_id="a1", agent_version=2, max_duration_s=60, silence_timeout_s=10
    )
    table.apply(_published("+15550002222", version=3))
    assert table.lookup("+15550001111") is None
    assert table.lookup("+15550002222") is not None
    table.apply(
        AgentArchived(
            tenant_id=TenantId("t1"),
            agent_id=AgentId("a1"),
            seq=4,
            event_id=EventId("e"),
            occurred_at=datetime.now(UTC),
            correlation_id=CorrelationId("c"),
            version=3,
        )
    )
    assert table.lookup("+15550002222") is None


def test_media_url_switches_the_scheme_to_wss() -> None:
    assert media_stream_url("https://edge.example.com/") == "wss://edge.example.com/twilio/media"
    assert media_stream_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/twilio/media"


def test_inbound_call_gets_connect_stream_and_call_received() -> None:
    routing = RoutingTable()
    routing.apply(_published("+15550001111"))
    client, publisher, _ = _client(_settings(), routing)
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA1", "From": "+1222", "To": "+15550001111"})
    assert status == 200
    assert (
        '<Stream statusCallback="https://edge.example.com/twilio/stream-status" url="wss://edge.example.com/twilio/media">'
        in body
    )
    assert f'<Parameter name="call_id" value="{call_id_for("CA1")}" />' in body
    (received,) = publisher.records
    assert isinstance(received, CallReceived)
    assert (received.agent_id, received.agent_version, received.direction) == ("a1", 2, "inbound")


def test_outbound_call_takes_its_identity_from_the_dialer_query() -> None:
    client, publisher, _ = _client(_settings())
    query = "call_id=c-9&tenant_id=t&agent_id=a&agent_version=4&direction=outbound"
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA2", "To": "+1999"}, query)
    assert status == 200
    assert '<Parameter name="call_id" value="c-9" />' in body
    assert '<Parameter name="direction" value="outbound" />' in body
    assert publisher.records == []  # the dialer records outbound calls itself


def test_unknown_number_and_full_node_get_a_spoken_refusal() -> None:
    client, publisher, _ = _client(_settings())
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA3", "To": "+1000"})
    assert status == 200
    assert "<Say>" in body
    assert "<Hangup />" in body
    full, _, _ = _client(_settings(max_streams=0, demo_agent_id="demo"))
    status, body = _post(full, "/twilio/voice", {"CallSid": "CA4", "To": "+1000"})
    assert status == 200
    assert "busy" in body
    assert "<Connect>" not in body
    assert publisher.records == []


def test_an_unknown_number_reads_the_agent_events_to_the_end_before_refusing() -> None:
    # The agent was published a moment ago: the log has it, the table not yet.
    settings = _settings()
    table, refreshes = RoutingTable(), []

    async def refresh() -> bool:
        refreshes.append(len(refreshes))
        if len(refreshes) == 1:
            table.apply(_published("+15550003333"))
        return True

    publisher = RecordingPublisher()
    node = EdgeNode(
        settings, publisher=publisher, telephony=RecordingTelephony(), routing=table, refresh_routes=refresh
    )
    node.ready = True
    app = create_app(settings, publisher=publisher, telephony=node.telephony, node=node)
    client = TestClient(app, base_url=BASE)
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA10", "To": "+15550003333"})
    assert (status, "<Connect>" in body, len(refreshes)) == (200, True, 1)
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA11", "To": "+15550003333"})
    assert len(refreshes) == 1  # a known number never waits
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA12", "To": "+15550009999"})
    assert (status, "not in service" in body, len(refreshes)) == (200, True, 2)


def test_an_unknown_number_when_the_log_cannot_be_read_hears_a_technical_problem_not_not_in_service() -> None:
    async def refresh() -> bool:
        return False  # the broker is away, or too slow to read to the end in time

    settings, publisher = _settings(), RecordingPublisher()
    node = EdgeNode(
        settings,
        publisher=publisher,
        telephony=RecordingTelephony(),
        routing=RoutingTable(),
        refresh_routes=refresh,
    )
    node.ready = True
    client = TestClient(
        create_app(settings, publisher=publisher, telephony=node.telephony, node=node), base_url=BASE
    )
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA13", "To": "+15550009999"})
    assert status == 200
    assert "technical problem" in body
    assert "not in service" not in body
    assert node.metrics.get("calls.refused_unavailable") == 1


def test_status_callback_becomes_a_fact_and_bad_status_is_counted() -> None:
    client, publisher, node = _client(_settings())
    form = {"CallSid": "CA5", "CallStatus": "busy", "SipResponseCode": "486", "SequenceNumber": "2"}
    assert _post(client, "/twilio/status", form)[0] == 204
    assert _post(client, "/twilio/status", form | {"CallStatus": "exploded"})[0] == 204
    (changed,) = publisher.records
    assert isinstance(changed, TelephonyStatusChanged)
    assert (changed.status, changed.sip_response_code, changed.call_id) == ("busy", 486, call_id_for("CA5"))
    assert node.metrics.get("bad_input.status_callback") == 1


def test_an_inbound_calls_status_after_its_stream_ended_is_the_tenant_of_the_number_dialled() -> None:
    # Twilio posts `completed` (with the duration) after the stream has stopped: the edge no
    # longer held the call and stamped the fact tenant "unknown", which the calls worker
    # dead-letters as another tenant's. The dialled number's owner is the call's tenant.
    routing = RoutingTable()
    routing.apply(_published("+15550001111"))
    client, publisher, _ = _client(_settings(), routing)
    inbound = {"CallSid": "CA8", "CallStatus": "completed", "Direction": "inbound", "CallDuration": "42"}
    assert _post(client, "/twilio/status", inbound | {"To": "+15550001111", "From": "+15557654321"})[0] == 204
    placed = {"CallSid": "CA9", "CallStatus": "completed", "Direction": "outbound-api"}
    assert _post(client, "/twilio/status", placed | {"To": "+15557654321", "From": "+15550001111"})[0] == 204
    assert _post(client, "/twilio/status", inbound | {"CallSid": "CA10", "To": "+15550002222"})[0] == 204
    tenants = [r.tenant_id for r in publisher.records if isinstance(r, TelephonyStatusChanged)]
    assert tenants == ["t1", "t1", "unknown"]  # a number nobody holds: said so, not guessed


def test_bad_signatures_get_403_and_a_security_event() -> None:
    client, publisher, node = _client(_settings(demo_agent_id="demo"))
    response = client.post(
        BASE + "/twilio/voice", data={"CallSid": "CA6"}, headers={"X-Twilio-Signature": "bad"}
    )
    assert response.status_code == 403
    assert client.post(BASE + "/twilio/status", data={"CallSid": "CA6"}).status_code == 403
    assert node.metrics.get("security.bad_signature") == 2
    assert publisher.records == []


def test_health_and_readiness_follow_draining() -> None:
    client, _, node = _client(_settings())
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    node.draining = True
    assert client.get("/readyz").status_code == 503
    assert not node.admit_call()
    assert not node.admit_stream()


def test_while_the_event_log_is_away_calls_are_refused_aloud_and_the_node_is_not_ready() -> None:
    routing = RoutingTable()
    routing.apply(_published("+15550001111"))
    client, publisher, _ = _client(_settings(), routing)
    publisher.healthy = False
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA7", "To": "+15550001111"})
    assert status == 200
    assert "technical problem" in body
    assert "<Connect>" not in body
    assert publisher.records == []
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["event_log"] is False
    publisher.healthy = True
    assert client.get("/readyz").status_code == 200
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA8", "To": "+15550001111"})
    assert "<Connect>" in body


def test_an_answered_call_holds_its_slot_so_the_next_caller_hears_busy_not_a_refused_socket() -> None:
    client, _, node = _client(_settings(max_streams=1, demo_agent_id="demo"))
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA7", "To": "+1000"})
    assert (status, "<Connect>" in body) == (200, True)
    # Before CA7's media socket arrives, CA8 calls: the slot is promised, so CA8 is told, spoken.
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA8", "To": "+1000"})
    assert (status, "busy" in body, "<Connect>" in body) == (200, True, False)
    assert node.admit_stream()  # CA7's socket gets the slot it was promised
    assert not node.admit_stream()  # one socket per promise: until it starts, it holds the slot
    node.stream_settled()  # that socket dropped before its start; Twilio tries again
    node.draining = True
    assert node.admit_stream()  # even during a drain: CA7 was answered before it began
    node.admission.claim()  # CA7's stream starts (LiveCall registration claims it)
    node.stream_settled()
    assert not node.admit_stream()  # nothing more while draining
    assert node.metrics.get("calls.refused_busy") == 1


def test_an_unknown_number_holds_no_slot() -> None:
    client, _, node = _client(_settings(max_streams=1))
    status, body = _post(client, "/twilio/voice", {"CallSid": "CA9", "To": "+1999"})
    assert (status, "<Say>" in body) == (200, True)
    assert node.admission.reserved == 0


class _MultiValues(dict[str, list[str]]):
    def getall(self, key: str) -> list[str]:
        return self[key]


def _post_fields(client: TestClient, path: str, fields: list[tuple[str, str]]) -> tuple[int, str]:
    """Post fields in order, a key as often as given, signed as Twilio signs them (every value)."""
    url = BASE + path
    values = _MultiValues()
    for key, value in fields:
        values.setdefault(key, []).append(value)
    signature = RequestValidator(TOKEN).compute_signature(url, values)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    response = client.post(url, content=urlencode(fields), headers=headers)
    return response.status_code, response.text


def test_a_signed_webhook_with_a_repeated_field_is_accepted() -> None:
    routing = RoutingTable()
    routing.apply(_published("+15550001111"))
    client, publisher, node = _client(_settings(), routing)
    fields = [("CallSid", "CA1"), ("To", "+15550001111"), ("From", "+15557654321")]
    status, _ = _post_fields(client, "/twilio/voice", [*fields, ("StirVerstat", "A"), ("StirVerstat", "B")])
    assert status == 200
    assert node.metrics.get("security.bad_signature") == 0
    assert [type(r) for r in publisher.records] == [CallReceived]


def test_posted_fields_cannot_pass_for_the_query_the_dialer_signed() -> None:
    # Fields a Voice SDK client may add to the body: shaped like the query's, they must not
    # make an inbound call pass for a dialer-placed one of another tenant, call or agent.
    routing = RoutingTable()
    routing.apply(_published("+15550001111"))
    client, publisher, _ = _client(_settings(), routing)
    forged = [("q.direction", "outbound"), ("q.call_id", "victim"), ("q.tenant_id", "t2"), ("__query__", "x")]
    fields = [("CallSid", "CA2"), ("To", "+15550001111"), ("From", "client:bob"), *forged]
    status, body = _post_fields(client, "/twilio/voice", fields)
    assert status == 200
    assert "victim" not in body
    assert '<Parameter name="direction" value="inbound" />' in body
    (received,) = publisher.records
    assert isinstance(received, CallReceived)
    assert received.tenant_id == "t1"


def test_an_inbound_calls_last_status_keeps_its_tenant_when_the_number_moved_meanwhile() -> None:
    routing = RoutingTable()
    routing.apply(_published("+15550001111", version=2))
    client, publisher, _ = _client(_settings(), routing)
    caller = {"To": "+15550001111", "From": "+15557654321"}
    assert _post(client, "/twilio/voice", {"CallSid": "CA3"} | caller)[0] == 200
    # t1 archives the agent and t2 takes the number while the call goes on.
    archived = AgentArchived(
        tenant_id=TenantId("t1"), agent_id=AgentId("a1"), seq=3, event_id=EventId("e"),
        occurred_at=datetime.now(UTC), correlation_id=CorrelationId("c"), version=2,
    )  # fmt: skip
    routing.apply(archived)
    routing.apply(version_published("t2", "b1", agent_config("+15550001111")))
    completed = {"CallSid": "CA3", "CallStatus": "completed", "Direction": "inbound"}
    assert _post(client, "/twilio/status", completed | caller)[0] == 204
    (received,) = [r for r in publisher.records if isinstance(r, CallReceived)]
    (status,) = [r for r in publisher.records if isinstance(r, TelephonyStatusChanged)]
    assert (status.call_id, status.tenant_id) == (received.call_id, "t1")


def test_the_answered_calls_tenants_are_bounded() -> None:
    answered = AnsweredCalls(capacity=2)
    for call in ("c1", "c2", "c3"):
        answered.remember(call, "t1")
    assert [answered.tenant_of(c) for c in ("c1", "c2", "c3")] == [None, "t1", "t1"]
