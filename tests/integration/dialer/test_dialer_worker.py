"""The dialer worker over the real broker, the real edge and calls worker, and a fake Twilio API."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from urllib.parse import parse_qsl, urlsplit

import pytest
import uvicorn
from dialer_rig import AUTH_TOKEN, DNC_NUMBER, DialerRig, new_tenant
from fastapi import FastAPI, Request, Response

from edge.twiml import media_stream_url
from infra.process import free_port
from schemas.call_media import TranscriptSegment
from schemas.calls import CallEnded, HangUpRequested, VoicemailRequested
from schemas.dialer import (
    CallAttemptRecorded,
    CallAttemptStarted,
    CallRequestCompleted,
    DialerRequestRejected,
    MachineAnswerHandled,
    WebhookDeliveryAttempted,
)
from schemas.ids import AgentId
from streams.dialer.policy import RetryPolicy
from streams.webhooks.runner import WebhookWorker
from streams.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, tenant_signing_key, verify
from tests.support.fake_twilio import Refuse
from voiceagent.caller import SimulatedCaller

pytestmark = pytest.mark.integration


def _number(i: int, base: int = 5550100000) -> str:
    return f"+1{base + i}"


async def test_dialer_limit_of_two_with_ten_requests_never_exceeds_two_live(rig: DialerRig) -> None:
    tenant = new_tenant()
    agent, config = await rig.publish_agent(tenant, max_concurrent_calls=2)
    calls = [await rig.place(tenant, agent, _number(i)) for i in range(10)]

    def all_done() -> bool:
        return len(rig.log.of(CallRequestCompleted, agent_id=agent)) == 10

    try:
        await rig.log.wait_for(all_done, timeout_s=120)
    except TimeoutError:
        raise AssertionError(rig.worker_logs()) from None
    completed = rig.log.of(CallRequestCompleted, agent_id=agent)
    assert sorted(c.call_id for c in completed) == sorted(calls)
    assert all(c.outcome == "completed" and c.answered for c in completed)
    assert rig.fake.live_peak[config.phone_numbers[0]] == 2
    # The dialer's own view agrees: never more than 2 started and not yet finished.
    live, peak = 0, 0
    for record in rig.log.records:
        if getattr(record, "agent_id", None) != agent:
            continue
        if isinstance(record, CallAttemptStarted):
            live += 1
        elif isinstance(record, CallRequestCompleted):
            live -= 1
        peak = max(peak, live)
    assert peak == 2
    created = [r for r in rig.fake.create_requests if r["From"] == config.phone_numbers[0]]
    assert len(created) == 10
    first = created[0]
    assert first["MachineDetection"] == "Enable"
    assert first["TimeLimit"] == "300"
    assert first["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert first["Url"].startswith(f"{rig.base}/twilio/voice?")
    voice_query = parse_qsl(urlsplit(first["Url"]).query)
    assert {"call_id", "direction"} <= dict(voice_query).keys()
    assert dict(voice_query)["direction"] == "outbound"
    assert [key for key, _ in voice_query] == sorted(key for key, _ in voice_query)  # as Twilio keeps it
    assert first["StatusCallback"].startswith(f"{rig.base}/twilio/status?call_id=")


async def test_dialer_busy_busy_answered_records_three_attempts(rig: DialerRig) -> None:
    tenant = new_tenant()
    agent, _ = await rig.publish_agent(tenant)
    number = _number(1, 5551200000)
    rig.fake.script(number, "busy", "busy")
    call_id = await rig.place(tenant, agent, number)
    await rig.log.wait_for(lambda: bool(rig.log.of(CallRequestCompleted, call_id=call_id)), timeout_s=60)
    attempts = rig.log.of(CallAttemptRecorded, call_id=call_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "busy"), (2, "busy"), (3, "answered")]
    assert [a.attempt_call_id for a in attempts] == [call_id, f"{call_id}-a2", f"{call_id}-a3"]
    assert attempts[0].retry_at is not None
    assert attempts[1].retry_at is not None
    assert attempts[1].retry_at - attempts[1].occurred_at > attempts[0].retry_at - attempts[0].occurred_at
    (done,) = rig.log.of(CallRequestCompleted, call_id=call_id)
    assert (done.attempts, done.outcome, done.answered) == (3, "completed", True)


async def test_dialer_duplicate_idempotency_key_places_one_call(rig: DialerRig) -> None:
    tenant = new_tenant()
    agent, _ = await rig.publish_agent(tenant)
    number = _number(2, 5551300000)
    first = await rig.place(tenant, agent, number, key="order-42")
    second = await rig.place(tenant, agent, number, key="order-42")
    await rig.log.wait_for(lambda: bool(rig.log.of(DialerRequestRejected, call_id=second)), timeout_s=60)
    await rig.log.wait_for(lambda: bool(rig.log.of(CallRequestCompleted, call_id=first)), timeout_s=60)
    (rejected,) = rig.log.of(DialerRequestRejected, call_id=second)
    assert rejected.reason == "duplicate"
    assert sum(r["To"] == number for r in rig.fake.create_requests) == 1


async def test_dialer_rejects_bad_requests_with_a_recorded_reason(rig: DialerRig) -> None:
    tenant = new_tenant()
    agent, _ = await rig.publish_agent(tenant)
    archived, _ = await rig.publish_agent(tenant)
    await rig.archive(tenant, archived)

    bad = {
        await rig.place(tenant, agent, "555-0100"): "invalid_number",
        await rig.place(tenant, agent, DNC_NUMBER): "do_not_call",
        await rig.place(tenant, AgentId("agent-nobody"), "+15551400001"): "unknown_agent",
    }
    await rig.log.wait_for(
        lambda: all(rig.log.of(DialerRequestRejected, call_id=c) for c in bad), timeout_s=60
    )
    # Agent events and requests reach the dialer through separate routers, so a request placed
    # within a fetch wait of its agent's archiving can overtake it (docs/adr/0010: narrowed, not
    # closed). Placed after the dialer has answered three later requests, it has in practice
    # always found the archiving applied; the test is about the recorded reason.
    bad[await rig.place(tenant, archived, "+15551400002")] = "archived_agent"
    await rig.log.wait_for(
        lambda: all(rig.log.of(DialerRequestRejected, call_id=c) for c in bad), timeout_s=60
    )
    assert {c: rig.log.of(DialerRequestRejected, call_id=c)[0].reason for c in bad} == bad
    assert not [r for r in rig.fake.create_requests if r["To"] in ("555-0100", DNC_NUMBER, "+15551400002")]


async def test_dialer_machine_detection_leaves_a_voicemail(rig: DialerRig) -> None:
    tenant = new_tenant()
    message = "Hi, this is Acme confirming your appointment tomorrow at ten."
    agent, _ = await rig.publish_agent(
        tenant, answering_machine_policy="leave_message", voicemail_message=message
    )
    number = _number(3, 5551500000)
    rig.fake.script(number, "machine")
    call_id = await rig.place(tenant, agent, number)
    try:
        await rig.log.wait_for(lambda: bool(rig.log.of(CallRequestCompleted, call_id=call_id)), timeout_s=30)
    finally:
        print(
            [
                r
                for r in rig.log.records
                if (getattr(r, "call_id", None) or "").startswith(call_id)
                or getattr(r, "agent_id", None) == agent
            ]
        )
    (handled,) = rig.log.of(MachineAnswerHandled, call_id=call_id)
    assert (handled.answered_by, handled.action, handled.voicemail_message) == (
        "machine_end_beep",
        "leave_message",
        message,
    )
    assert rig.log.of(CallRequestCompleted, call_id=call_id)[0].outcome == "machine"
    # Detection waits for the end of the machine's greeting, so the message follows the beep
    # (with Enable, Twilio said machine_start at once and the message went over the greeting).
    (created,) = [r for r in rig.fake.create_requests if r["To"] == number]
    assert created["MachineDetection"] == "DetectMessageEnd"


async def test_dialer_voicemail_is_spoken_on_the_media_path_then_the_agent_hangs_up(rig: DialerRig) -> None:
    tenant = new_tenant()
    message = "Hi, this is Acme calling about your order. Please call us back today."
    agent, _ = await rig.publish_agent(
        tenant, answering_machine_policy="leave_message", voicemail_message=message
    )
    number = _number(7, 5551500000)
    rig.fake.script(number, "machine")
    rig.fake.fetch_twiml, rig.fake.answer_hold_s = True, None  # the line stays up for the message
    machine: SimulatedCaller | None = None
    sid: str | None = None
    try:
        call_id = await rig.place(tenant, agent, number)
        sid, twiml = await _twiml_of(rig, number)
        parameters = dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)"', twiml))
        attempt = parameters["call_id"]
        machine = SimulatedCaller(
            media_stream_url(rig.base), AUTH_TOKEN, stream_sid="MZ" + uuid.uuid4().hex, call_sid=sid
        )
        # Twilio reports machine_end_beep once the machine's greeting and beep are over: the
        # line is quiet while the agent speaks.
        await machine.open(parameters)

        def voicemail_left() -> bool:
            return bool(rig.log.of(CallEnded, call_id=attempt))

        await rig.log.wait_for(voicemail_left, timeout_s=60)
        await rig.fake.complete(sid)
        await rig.log.wait_for(lambda: bool(rig.log.of(CallRequestCompleted, call_id=call_id)), 60)
    finally:
        rig.fake.fetch_twiml, rig.fake.answer_hold_s = False, 0.2
        if machine is not None and not machine.closed.is_set():
            await machine.hang_up()
        if sid is not None:
            await rig.fake.complete(sid)
    (handled,) = rig.log.of(MachineAnswerHandled, call_id=call_id)
    assert (handled.action, handled.voicemail_message) == ("leave_message", message)
    assert [r.message for r in rig.log.of(VoicemailRequested, call_id=attempt)] == [message]
    said = [s.text for s in rig.log.of(TranscriptSegment, call_id=attempt, speaker="agent")]
    assert said == [message], rig.worker_logs()
    assert [(h.requested_by, h.reason) for h in rig.log.of(HangUpRequested, call_id=attempt)] == [
        ("agent", "voicemail")
    ]
    (ended,) = rig.log.of(CallEnded, call_id=attempt)
    assert (ended.reason, ended.ended_by) == ("voicemail", "agent")
    # The whole message was played down the line (20 ms frames), with nothing cut off.
    assert (len(machine.audio.heard) > 150, machine.audio.clears) == (True, 0)
    assert rig.log.of(CallRequestCompleted, call_id=call_id)[0].outcome == "machine"


async def _twiml_of(rig: DialerRig, number: str, timeout_s: float = 30) -> tuple[str, str]:
    """(call SID, TwiML) once the fake has fetched the edge's TwiML for a call to number."""
    deadline = time.monotonic() + timeout_s
    while True:
        for call in rig.fake.calls.values():
            if call.to == number and call.sid in rig.fake.twiml:
                return call.sid, rig.fake.twiml[call.sid]
        assert time.monotonic() < deadline, "the fake never fetched the TwiML:\n" + rig.worker_logs()
        await asyncio.sleep(0.05)


async def test_dialer_machine_under_hang_up_policy_is_hung_up_through_the_api(rig: DialerRig) -> None:
    tenant = new_tenant()
    agent, _ = await rig.publish_agent(tenant, answering_machine_policy="hang_up")
    rig.fake.answer_hold_s = None  # only the dialer's hang-up can end it
    try:
        number = _number(4, 5551600000)
        rig.fake.script(number, "machine")
        call_id = await rig.place(tenant, agent, number)
        await rig.log.wait_for(lambda: bool(rig.log.of(CallRequestCompleted, call_id=call_id)), timeout_s=60)
    finally:
        rig.fake.answer_hold_s = 0.2
    (handled,) = rig.log.of(MachineAnswerHandled, call_id=call_id)
    assert handled.action == "hang_up"
    (call,) = [c for c in rig.fake.calls.values() if c.to == number]
    assert call.status == "completed"


async def test_dialer_twilio_errors_are_recorded_and_retried_only_when_sensible(rig: DialerRig) -> None:
    tenant = new_tenant()
    agent, _ = await rig.publish_agent(tenant)
    invalid, throttled = _number(5, 5551700000), _number(6, 5551700000)
    rig.fake.script(invalid, Refuse(21211, 400, "The 'To' number is not a valid phone number."))
    rig.fake.script(throttled, Refuse(20429, 429, "Too Many Requests"))
    dead = await rig.place(tenant, agent, invalid)
    retried = await rig.place(tenant, agent, throttled)
    await rig.log.wait_for(
        lambda: bool(
            rig.log.of(CallRequestCompleted, call_id=dead)
            and rig.log.of(CallRequestCompleted, call_id=retried)
        ),
        timeout_s=60,
    )
    (refused,) = rig.log.of(CallAttemptRecorded, call_id=dead)
    assert (refused.outcome, refused.error_code, refused.retry_at) == ("error", 21211, None)
    assert rig.log.of(CallRequestCompleted, call_id=dead)[0].outcome == "failed"
    attempts = rig.log.of(CallAttemptRecorded, call_id=retried)
    assert [(a.outcome, a.error_code) for a in attempts] == [("error", 20429), ("answered", None)]


async def test_dialer_webhooks_arrive_signed_and_a_failing_endpoint_is_retried_and_recorded(
    rig: DialerRig,
) -> None:
    secret = "whsec-test"
    tenant = new_tenant()
    received: list[dict[str, object]] = []
    receiver = FastAPI()

    @receiver.post("/good")
    async def good(request: Request) -> Response:
        body = await request.body()
        ts = int(request.headers[TIMESTAMP_HEADER])
        # Signed with the tenant's key (ADR 27), which GET /api/webhook-signing-key gives its admin.
        key = tenant_signing_key(secret, tenant)
        ok = verify(key, ts, body, request.headers[SIGNATURE_HEADER], int(time.time()))
        received.append({"ok": ok, **json.loads(body)})
        return Response(status_code=204 if ok else 401)

    @receiver.post("/bad")
    async def bad() -> Response:
        return Response(status_code=503)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    stop = asyncio.Event()
    worker = WebhookWorker(
        rig.settings,
        secret,
        RetryPolicy(max_attempts=3, base_s=0.1, factor=2),
        group_id=f"hooks-{rig.run_id}",
        allow_private=True,  # the receiver is on 127.0.0.1
    )
    running = asyncio.create_task(worker.run(stop))
    try:
        urls = (f"http://127.0.0.1:{port}/good", f"http://127.0.0.1:{port}/bad")
        agent, _ = await rig.publish_agent(tenant, webhook_urls=urls)
        # The worker follows the agents' versions as they are published: place the call once it has
        # this agent's URLs.
        deadline = time.monotonic() + 30  # a guard only
        while worker.planner.urls.get(agent) != urls:
            assert not running.done(), "the webhook worker stopped"
            assert time.monotonic() < deadline, "the webhook worker never read the agent"
            await asyncio.sleep(0.05)
        call_id = await rig.place(tenant, agent, _number(7, 5551800000))

        def settled() -> bool:
            attempts = rig.log.of(WebhookDeliveryAttempted, call_id=call_id)
            good_done = sum(a.succeeded for a in attempts) == 2
            bad_done = sum(a.url.endswith("/bad") and a.next_attempt_at is None for a in attempts) == 2
            return bool(good_done and bad_done)

        try:
            await rig.log.wait_for(settled, timeout_s=30)
        except AssertionError:
            got = [
                (a.url, a.event_type, a.attempt, a.status_code, a.error)
                for a in rig.log.of(WebhookDeliveryAttempted, call_id=call_id)
            ]
            raise AssertionError(f"{got}\n{received}") from None
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        server.should_exit = True
        await serving
    assert sorted(str(r["type"]) for r in received) == ["call.ended", "call.started"]
    assert all(r["ok"] for r in received)
    attempts = rig.log.of(WebhookDeliveryAttempted, call_id=call_id)
    bad_attempts = sorted(
        (a.event_type, a.attempt, a.status_code) for a in attempts if a.url.endswith("/bad")
    )
    assert bad_attempts == [(t, n, 503) for t in ("call.ended", "call.started") for n in (1, 2, 3)]
    assert all(a.error == "HTTP 503" and not a.succeeded for a in attempts if a.url.endswith("/bad"))
