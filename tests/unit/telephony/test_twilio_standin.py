"""The offline Twilio stand-in: the real twilio client places a call, a simulated phone answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from edge.twiml import StreamParameters, connect_stream, media_stream_url, refuse
from infra.process import free_port
from streams.telephony.port import DialRequest
from streams.telephony.standin.phone import PhoneLine, TwiMLError
from streams.telephony.standin.phone import connect_stream as read_stream
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
