"""The offline Twilio stand-in: the real twilio client places, ends and transfers calls; simulated phones."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from edge.telephony import TwilioTelephony as EdgeTelephony
from edge.twiml import StreamParameters, connect_stream, media_stream_url, refuse
from infra.process import free_port
from infra.settings import TwilioSettings
from streams.telephony.port import DialRequest
from streams.telephony.standin.phone import PhoneLine, TwiMLError
from streams.telephony.standin.phone import connect_stream as read_stream
from streams.telephony.standin.redirect import dialled_number
from streams.telephony.standin.server import TwilioStandIn
from streams.telephony.twilio_rest import TwilioTelephony

TOKEN = "0123456789abcdef0123456789abcdef"
PARAMS = StreamParameters(
    call_id="call-1", tenant_id="t-1", agent_id="a-1", agent_version=2, direction="outbound"
)


def test_the_phone_reads_the_stream_and_its_parameters_from_the_edges_twiml() -> None:
    target = read_stream(connect_stream("https://edge.example", PARAMS))
    assert target.url == media_stream_url("https://edge.example") == "wss://edge.example/twilio/media"
    assert target.parameters == PARAMS.as_dict()


@pytest.mark.parametrize("twiml", [refuse("Sorry, goodbye."), "Internal Server Error", ""])
def test_twiml_that_connects_no_stream_is_refused_with_what_it_said(twiml: str) -> None:
    with pytest.raises(TwiMLError):
        read_stream(twiml)


@dataclass
class Edge:
    """What the edge receives from the stand-in, each post's signature checked."""

    base: str
    posts: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 10) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout_s)

    def statuses(self) -> list[str]:
        return [form["CallStatus"] for path, form in self.posts if path == "/twilio/status"]


@contextlib.asynccontextmanager
async def edge() -> AsyncIterator[Edge]:
    port = free_port()
    seen = Edge(f"http://127.0.0.1:{port}")
    validator = RequestValidator(TOKEN)

    async def receive(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        if not validator.validate(str(request.url), form, request.headers.get("X-Twilio-Signature", "")):
            return Response(status_code=403)
        async with seen.changed:
            seen.posts.append((request.url.path, form))
            seen.changed.notify_all()
        if request.url.path == "/twilio/voice":
            return PlainTextResponse(connect_stream(seen.base, PARAMS), media_type="application/xml")
        return Response(status_code=204)

    app = Starlette(routes=[Route("/twilio/{kind}", receive, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        yield seen
    finally:
        server.should_exit = True
        await task


def _request(to: str) -> DialRequest:
    return DialRequest(
        call_id="call-1", tenant_id="t-1", agent_id="a-1", agent_version=2,
        to_number=to, from_number="+15550100000", time_limit_s=60,
    )  # fmt: skip


async def test_a_registered_phone_is_rung_answered_with_the_twiml_and_hangs_up() -> None:
    async with edge() as seen, TwilioStandIn(TOKEN, port=free_port(), unregistered="no-answer") as api:
        telephony = TwilioTelephony("AC" + "0" * 32, TOKEN, seen.base, api_base_url=api.base_url)
        async with httpx.AsyncClient() as http:
            phone = PhoneLine(api.base_url, "+15550161234", http)
            await phone.register()
            sid = await telephony.place(_request(phone.number))
            answered = await phone.answered(timeout_s=10)
            assert answered.call_sid == sid
            assert read_stream(answered.twiml).parameters["call_id"] == "call-1"
            await seen.until(lambda: seen.statuses() == ["initiated", "ringing", "in-progress"])
            (_voice, fetched), *_ = [p for p in seen.posts if p[0] == "/twilio/voice"]
            assert (fetched["CallSid"], fetched["To"], fetched["CallStatus"]) == (
                sid,
                phone.number,
                "in-progress",
            )
            assert fetched["AnsweredBy"] == "human"  # the dialer asks for answering-machine detection
            await phone.hang_up()
        await telephony.aclose()
    assert seen.statuses()[-1] == "completed"
    assert seen.posts[-1][1]["CallDuration"] == "1"


async def test_a_number_no_phone_waits_on_is_not_answered() -> None:
    async with edge() as seen, TwilioStandIn(TOKEN, port=free_port(), unregistered="no-answer") as api:
        telephony = TwilioTelephony("AC" + "0" * 32, TOKEN, seen.base, api_base_url=api.base_url)
        await telephony.place(_request("+15550169999"))
        await seen.until(lambda: seen.statuses()[-1:] == ["no-answer"])
        await telephony.aclose()
    assert not [path for path, _ in seen.posts if path == "/twilio/voice"]


async def test_the_platform_hanging_up_frees_the_phone_line() -> None:
    async with edge() as seen, TwilioStandIn(TOKEN, port=free_port()) as api:
        telephony = TwilioTelephony("AC" + "0" * 32, TOKEN, seen.base, api_base_url=api.base_url)
        async with httpx.AsyncClient() as http:
            phone = PhoneLine(api.base_url, "+15550164321", http)
            await phone.register()
            sid = await telephony.place(_request(phone.number))
            await phone.answered(timeout_s=10)
            await seen.until(lambda: "in-progress" in seen.statuses())
            await telephony.hang_up(sid)
            assert seen.statuses()[-1] == "completed"
            assert not api.phones.ringing(phone.number)
            await phone.hang_up()  # the simulator hanging up afterwards changes nothing
        await telephony.aclose()
    assert seen.statuses().count("completed") == 1


async def test_cancelling_a_ringing_call_stops_the_ringing_and_ends_it_canceled() -> None:
    async with edge() as seen, TwilioStandIn(TOKEN, port=free_port(), ring_s=30) as api:
        telephony = TwilioTelephony("AC" + "0" * 32, TOKEN, seen.base, api_base_url=api.base_url)
        sid = await telephony.place(_request("+15550165555"))
        await seen.until(lambda: seen.statuses() == ["initiated", "ringing"])
        await telephony.cancel(sid)
        await seen.until(lambda: seen.statuses()[-1:] == ["canceled"], timeout_s=5)
        await telephony.cancel(sid)  # again, as a re-processed decision would: nothing changes
        await telephony.aclose()
    assert seen.statuses() == ["initiated", "ringing", "canceled"]
    assert api.live() == 0


async def test_cancelling_an_answered_call_leaves_it_up() -> None:
    async with edge() as seen, TwilioStandIn(TOKEN, port=free_port(), unregistered="answer") as api:
        telephony = TwilioTelephony("AC" + "0" * 32, TOKEN, seen.base, api_base_url=api.base_url)
        sid = await telephony.place(_request("+15550166666"))
        await seen.until(lambda: "in-progress" in seen.statuses())
        await telephony.cancel(sid)
        assert api.calls[sid].status == "in-progress"
        await telephony.hang_up(sid)
        await telephony.aclose()
    assert seen.statuses()[-1] == "completed"


def _edge_telephony(api: TwilioStandIn) -> EdgeTelephony:
    """The edge's adapter: the real twilio client's ``calls(sid).update``, pointed at the stand-in."""
    return EdgeTelephony(TwilioSettings(auth_token=SecretStr(TOKEN), api_base_url=api.base_url))


async def test_an_incoming_call_the_platform_transfers_is_dialled_and_ends_when_the_caller_hangs_up() -> None:
    async with edge() as seen, TwilioStandIn(TOKEN, port=free_port()) as api, httpx.AsyncClient() as http:
        phone = PhoneLine(api.base_url, "+15550191234", http)
        answered = await phone.dial(
            "+15550100777",
            voice_url=f"{seen.base}/twilio/voice",
            status_callback=f"{seen.base}/twilio/status",
        )
        (_voice, webhook), *_ = seen.posts
        assert (webhook["CallSid"], webhook["From"], webhook["To"]) == (
            answered.call_sid,
            phone.number,
            "+15550100777",
        )
        assert (webhook["Direction"], webhook["CallStatus"]) == ("inbound", "ringing")
        assert read_stream(answered.twiml).parameters["call_id"] == "call-1"

        assert await _edge_telephony(api).transfer(answered.call_sid, "+15550123456")

        assert await phone.transferred(timeout_s=5) == "+15550123456"
        assert api.calls[answered.call_sid].status == "in-progress"  # bridged to the target
        assert seen.statuses() == []  # a number's status callback hears only of the end
        await phone.hang_up()
    (completed,) = [form for path, form in seen.posts if path == "/twilio/status"]
    assert (completed["CallSid"], completed["CallStatus"]) == (answered.call_sid, "completed")
    assert (completed["Direction"], completed["CallDuration"]) == ("inbound", "1")


async def test_an_answered_outbound_call_the_platform_transfers_tells_the_phone_where_it_went() -> None:
    async with edge() as seen, TwilioStandIn(TOKEN, port=free_port()) as api:
        telephony = TwilioTelephony("AC" + "0" * 32, TOKEN, seen.base, api_base_url=api.base_url)
        async with httpx.AsyncClient() as http:
            phone = PhoneLine(api.base_url, "+15550164444", http)
            await phone.register()
            sid = await telephony.place(_request(phone.number))
            await phone.answered(timeout_s=10)
            await seen.until(lambda: "in-progress" in seen.statuses())
            assert await _edge_telephony(api).transfer(sid, "+15550123456")
            assert await phone.transferred(timeout_s=5) == "+15550123456"
            await phone.hang_up()
        await telephony.aclose()
    assert seen.statuses()[-1] == "completed"


async def test_redirecting_a_call_that_is_not_in_progress_is_refused_as_twilio_does() -> None:
    async with edge() as seen, TwilioStandIn(TOKEN, port=free_port(), ring_s=30) as api:
        telephony = TwilioTelephony("AC" + "0" * 32, TOKEN, seen.base, api_base_url=api.base_url)
        sid = await telephony.place(_request("+15550167777"))
        await seen.until(lambda: seen.statuses() == ["initiated", "ringing"])
        client = Client("AC" + "0" * 32, TOKEN)
        client.api.base_url = api.base_url
        with pytest.raises(TwilioRestException) as refused:
            await asyncio.to_thread(client.calls(sid).update, twiml="<Response><Dial>+1555</Dial></Response>")
        assert (refused.value.status, refused.value.code) == (400, 21220)
        with pytest.raises(TwilioRestException) as unknown:
            await asyncio.to_thread(client.calls("CA" + "f" * 32).update, twiml="<Response/>")
        assert (unknown.value.status, unknown.value.code) == (404, 20404)
        await telephony.cancel(sid)
        await telephony.aclose()


@pytest.mark.parametrize(
    ("twiml", "dialled"),
    [
        ("<Response><Dial>+15550123456</Dial></Response>", "+15550123456"),
        (
            "<Response><Say>One moment</Say><Dial><Number>+15550123456</Number></Dial></Response>",
            "+15550123456",
        ),
        ("<Response><Say>Goodbye</Say><Hangup/><Dial>+15550123456</Dial></Response>", None),
        ("<Response><Say>Goodbye</Say></Response>", None),
        ("not TwiML", None),
    ],
)
def test_the_number_new_twiml_dials(twiml: str, dialled: str | None) -> None:
    assert dialled_number(twiml) == dialled


async def test_call_sids_are_not_reused_by_a_restarted_stand_in() -> None:
    # An inbound call's id is derived from its sid: a reused sid would be taken for an old call.
    sids = []
    async with edge() as seen:
        for _restart in range(2):
            async with TwilioStandIn(TOKEN, port=free_port(), unregistered="no-answer") as api:
                telephony = TwilioTelephony("AC" + "0" * 32, TOKEN, seen.base, api_base_url=api.base_url)
                sids.append(await telephony.place(_request("+15550168888")))
                await telephony.aclose()
    assert sids[0] != sids[1]
