"""The Twilio REST stand-in: ``Calls.json`` as the real twilio client sends it, Twilio's callbacks.

It answers ``POST /2010-04-01/Accounts/{AC}/Calls.json`` with Twilio's call JSON (or Twilio's
error JSON), and ``POST .../Calls/{sid}.json`` (hang up, or new ``Twiml`` for the live call: a
``<Dial>`` transfers it, see below). What happens to each call is scripted
per number: ``answer``, ``busy``, ``no-answer``, ``failed``, ``machine``, or ``Refuse(code,
status)``; a number a simulated phone has registered for (``streams.telephony.standin.phones``)
is answered by that phone, and any other number gets ``unregistered``. The stand-in then POSTs
the status callbacks the call asked for (initiated, ringing, in-progress with ``AnsweredBy``, and
an end), form-encoded and signed with twilio's ``RequestValidator`` scheme, to the call's
StatusCallback or to ``callback_url``. On answer it fetches the call's TwiML from its Url (signed,
as Twilio does) when ``fetch_twiml`` is on or a phone answers. Answered calls stay up until
``complete(sid)``, a REST hang-up, the phone hanging up, ``answer_hold_s``, or the TimeLimit; a
call still ringing (``ring_s``) is ended ``canceled`` by a REST update, as Twilio does.

Simulated phones also call in (``phones.py``): the stand-in then holds an ``inbound`` call it
did not place, as Twilio does for a call to one of the account's numbers, so the platform's
REST updates of it work. New TwiML for an answered call leaves whatever TwiML ran before (a
``<Connect><Stream>``: the phone is told, as its Media Stream ends); a ``<Dial>`` bridges the
caller to its number and the call stays ``in-progress`` until the caller hangs up, then ends
``completed`` (the only callback a number's status callback gets); any other document ends the
call. An update of a call that is not in progress is refused with Twilio's 21220.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from twilio.request_validator import RequestValidator

from streams.telephony.standin.phones import Answered, IncomingCall, Phones, phone_routes
from streams.telephony.standin.redirect import dialled_number

_log = logging.getLogger("streams.telephony.standin")
ACCOUNT_SID = "AC00000000000000000000000000000000"
ENDED_BY_CALLEE = ("busy", "no-answer", "failed")
UNANSWERED = ("queued", "initiated", "ringing")


@dataclass(frozen=True)
class Refuse:
    """Answer the create request with Twilio's error JSON."""

    code: int
    status: int = 400
    message: str = "refused by the stand-in"


Outcome = str | Refuse


@dataclass
class PlacedCall:
    """One call the stand-in accepted, with every callback it posted."""

    sid: str
    to: str
    from_: str
    url: str
    status_callback: str | None
    events: list[str]
    outcome: str
    machine_detection: str | None
    time_limit: int | None
    phone: bool = False
    status: str = "queued"
    callbacks: list[dict[str, str]] = field(default_factory=list)
    sequence: int = 0
    answered_at: float | None = None
    direction: str = "outbound-api"
    transferred_to: str | None = None
    """The number a ``<Dial>`` in TwiML given through the REST API bridged the call to."""
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def line(self) -> str | None:
        """The simulated phone on the call: the caller of an inbound call, else the callee's."""
        if self.direction == "inbound":
            return self.from_
        return self.to if self.phone else None


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handling: whoever embeds the stand-in owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class TwilioStandIn:
    """The stand-in API; ``async with TwilioStandIn(token, port=p) as api:`` serves it on ``port``."""

    def __init__(
        self,
        auth_token: str,
        *,
        port: int,
        host: str = "127.0.0.1",
        callback_url: str | None = None,
        answer_hold_s: float | None = None,
        ring_s: float = 0.0,
        fetch_twiml: bool = False,
        unregistered: Outcome = "answer",
    ) -> None:
        self.auth_token = auth_token
        self.host, self.port = host, port
        self.callback_url = callback_url
        self.answer_hold_s = answer_hold_s
        self.ring_s = ring_s
        self.fetch_twiml = fetch_twiml
        self.unregistered = unregistered
        self.phones = Phones()
        self.calls: dict[str, PlacedCall] = {}
        self.create_requests: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.twiml: dict[str, str] = {}
        self.redirects: list[tuple[str, str]] = []
        self.live_peak: dict[str, int] = defaultdict(int)
        self._live: dict[str, set[str]] = defaultdict(set)
        self._scripts: dict[str, deque[Outcome]] = defaultdict(deque)
        # Unique across restarts, as Twilio's: an inbound call's id is derived from its sid.
        self._sids = (f"CA{uuid.uuid4().hex}" for _ in itertools.count())
        self._validator = RequestValidator(auth_token)
        # aiohttp, not httpx: httpcore scans every pooled connection on each request, which
        # made the stand-in the bottleneck of the dialer bench at a few hundred callbacks/s.
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: uvicorn.Server | None = None
        self._serve: asyncio.Task[None] | None = None
        self.app = self._build()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def script(self, number: str, *outcomes: Outcome) -> None:
        """What the next calls to ``number`` do, in order; then a phone, or ``unregistered``."""
        self._scripts[number].extend(outcomes)

    def live(self, key: str = "*") -> int:
        """Calls created and not yet ended (``key``: a From number, or ``*`` for all)."""
        return len(self._live[key])

    async def __aenter__(self) -> TwilioStandIn:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0))
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="off")
        self._server = _QuietServer(config)
        self._serve = asyncio.create_task(self._server.serve())
        while not self._server.started:  # uvicorn exposes a flag, not an event
            if self._serve.done():  # the port was taken: say so rather than wait forever
                await self._serve
                raise OSError(f"the Twilio stand-in could not listen on {self.base_url}")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.should_exit = True
        if self._serve is not None:
            await self._serve
        if self._http is not None:
            await self._http.close()

    def _build(self) -> FastAPI:
        app = FastAPI(title="Twilio stand-in (offline)")

        @app.post("/2010-04-01/Accounts/{account}/Calls.json")
        async def create(account: str, request: Request) -> JSONResponse:
            form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
            return self._create(account, form)

        @app.post("/2010-04-01/Accounts/{account}/Calls/{sid}.json")
        async def update(account: str, sid: str, request: Request) -> JSONResponse:
            form = dict(parse_qsl((await request.body()).decode()))
            call = self.calls.get(sid)
            if call is None:
                return _error(20404, 404, f"The requested resource /Calls/{sid}.json was not found")
            if form.get("Status") in ("completed", "canceled"):
                await self._hang_up(call, form["Status"])
            elif "Twiml" in form:
                if call.status != "in-progress":
                    return _error(21220, 400, "Call is not in-progress. Cannot redirect.")
                # Twilio accepts the new TwiML, then runs it: its effects follow the answer.
                redirect = BackgroundTask(self._redirect, call, form["Twiml"])
                return JSONResponse(self._json(account, call), background=redirect)
            return JSONResponse(self._json(account, call))

        app.include_router(phone_routes(self.phones, self.complete, self.call_in))
        return app

    def _create(self, account: str, pairs: list[tuple[str, str]]) -> JSONResponse:
        form: dict[str, Any] = dict(pairs)
        form["StatusCallbackEvent"] = [v for k, v in pairs if k == "StatusCallbackEvent"]
        self.create_requests.append(form)
        to = form.get("To", "")
        queue = self._scripts[to]
        phone = not queue and self.phones.ringing(to)
        outcome = queue.popleft() if queue else "answer" if phone else self.unregistered
        if isinstance(outcome, Refuse):
            self.refused.append(form)
            return _error(outcome.code, outcome.status, outcome.message)
        call = PlacedCall(
            sid=next(self._sids),
            to=to,
            from_=form.get("From", ""),
            url=form.get("Url", ""),
            status_callback=form.get("StatusCallback"),
            events=form["StatusCallbackEvent"],
            outcome=outcome,
            machine_detection=form.get("MachineDetection"),
            time_limit=int(form["TimeLimit"]) if form.get("TimeLimit") else None,
            phone=phone,
        )
        if phone:
            self.phones.claim(to, call.sid)
        _log.info("call %s from %s to %s: %s", call.sid, call.from_, call.to, "phone" if phone else outcome)
        self.calls[call.sid] = call
        for key in ("*", call.from_):
            self._live[key].add(call.sid)
            self.live_peak[key] = max(self.live_peak[key], len(self._live[key]))
        task = asyncio.create_task(self._progress(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return JSONResponse(self._json(account, call), status_code=201)

    def _json(self, account: str, call: PlacedCall) -> dict[str, Any]:
        return {
            "sid": call.sid,
            "account_sid": account,
            "to": call.to,
            "from": call.from_,
            "status": call.status,
            "direction": call.direction,
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account}/Calls/{call.sid}.json",
        }

    async def _progress(self, call: PlacedCall) -> None:
        await self._callback(call, "initiated", "initiated")
        await self._callback(call, "ringing", "ringing")
        if self.ring_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.ended.wait(), self.ring_s)
        if call.ended.is_set():
            return  # cancelled through the API before anyone answered
        if call.outcome in ENDED_BY_CALLEE:
            await self._end(call, call.outcome)
            return
        answered_by = None
        if call.machine_detection:
            # As Twilio: Enable says machine_start as soon as it hears a machine; DetectMessageEnd
            # waits for the greeting to end and says how (here: a beep).
            machine = "machine_end_beep" if call.machine_detection == "DetectMessageEnd" else "machine_start"
            answered_by = machine if call.outcome == "machine" else "human"
        call.answered_at = time.monotonic()
        if (self.fetch_twiml or call.phone) and call.url:
            await self._fetch_twiml(call, answered_by)
        await self._callback(call, "answered", "in-progress", AnsweredBy=answered_by)
        if self.answer_hold_s is not None and not call.phone:
            await asyncio.sleep(self.answer_hold_s)
        elif call.time_limit:  # Twilio ends the call at its TimeLimit whoever else forgets to
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.ended.wait(), call.time_limit)
        else:
            return
        await self.complete(call.sid)

    async def _hang_up(self, call: PlacedCall, status: str) -> None:
        """A REST update, as Twilio does it: ``canceled`` ends a call only while it is queued or
        ringing, ``completed`` any call; either way an unanswered call ends ``canceled``."""
        if call.status in UNANSWERED:
            await self._end(call, "canceled")
        elif status == "completed":
            await self.complete(call.sid)

    async def _redirect(self, call: PlacedCall, twiml: str) -> None:
        """The call runs ``twiml`` instead of what it ran: a ``<Dial>`` transfers it, else it ends."""
        self.redirects.append((call.sid, twiml))
        target = dialled_number(twiml)
        _log.info("call %s redirected: %s", call.sid, f"dials {target}" if target else "ends")
        if target is None:
            await self.complete(call.sid)
            return
        call.transferred_to = target
        if call.line is not None:
            self.phones.transfer(call.line, call.sid, target)

    async def call_in(self, number: str, incoming: IncomingCall) -> Answered:
        """A phone at ``number`` calls ``incoming.to``: ask its Voice URL for TwiML, as Twilio does."""
        call = PlacedCall(
            sid=next(self._sids), to=incoming.to, from_=number, url=incoming.voice_url,
            status_callback=incoming.status_callback, events=[], outcome="answer",
            machine_detection=None, time_limit=None, direction="inbound", status="ringing",
        )  # fmt: skip
        _log.info("call %s from %s to %s: incoming", call.sid, call.from_, call.to)
        self.calls[call.sid] = call
        for key in ("*", call.from_):
            self._live[key].add(call.sid)
            self.live_peak[key] = max(self.live_peak[key], len(self._live[key]))
        self.phones.register(number)
        self.phones.claim(number, call.sid)
        params = {
            "CallSid": call.sid, "AccountSid": ACCOUNT_SID, "From": call.from_, "To": call.to,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01",
        }  # fmt: skip
        try:
            self.twiml[call.sid] = await self._post(call.url, params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"fetching the TwiML from {call.url} failed: {type(exc).__name__}: {exc}"
            _log.warning("call %s: %s", call.sid, error)
            await self._end(call, "failed")
            return Answered(call_sid=call.sid, from_number=number, to_number=call.to, twiml="", error=error)
        call.status, call.answered_at = "in-progress", time.monotonic()
        answered = Answered(
            call_sid=call.sid, from_number=number, to_number=call.to, twiml=self.twiml[call.sid]
        )
        self.phones.answer(number, answered)
        return answered

    async def complete(self, sid: str, duration_s: int | None = None) -> None:
        """The callee (or the API) hangs up an answered call; the duration defaults to the real one."""
        call = self.calls[sid]
        if call.status == "in-progress":
            if duration_s is None:
                duration_s = max(1, math.ceil(time.monotonic() - (call.answered_at or time.monotonic())))
            await self._end(call, "completed", CallDuration=str(duration_s))

    async def _end(self, call: PlacedCall, status: str, **extra: str | None) -> None:
        for key in ("*", call.from_):
            self._live[key].discard(call.sid)
        call.ended.set()
        if call.line is not None:
            self.phones.ended(call.line, call.sid)
        await self._callback(call, "completed", status, **extra)

    async def _fetch_twiml(self, call: PlacedCall, answered_by: str | None) -> None:
        params = {"CallSid": call.sid, "From": call.from_, "To": call.to, "CallStatus": "in-progress"}
        if answered_by:
            params["AnsweredBy"] = answered_by
        error: str | None = None
        try:
            self.twiml[call.sid] = await self._post(call.url, params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"fetching the TwiML from {call.url} failed: {type(exc).__name__}: {exc}"
            _log.warning("call %s: %s", call.sid, error)
        if call.phone:
            answered = Answered(
                call_sid=call.sid, from_number=call.from_, to_number=call.to,
                twiml=self.twiml.get(call.sid, ""), error=error,
            )  # fmt: skip
            self.phones.answer(call.to, answered)

    async def _callback(self, call: PlacedCall, event: str, status: str, **extra: str | None) -> None:
        if call.ended.is_set() and event != "completed":
            return  # cancelled while it was being set up: nothing more happens to it
        call.status = status
        if event != "completed" and event not in call.events:
            return
        target = self.callback_url or call.status_callback
        if not target:
            return
        call.sequence += 1
        params = {
            "CallSid": call.sid,
            "AccountSid": ACCOUNT_SID,
            "From": call.from_,
            "To": call.to,
            "CallStatus": status,
            "Direction": call.direction,
            "ApiVersion": "2010-04-01",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(call.sequence - 1),
            **{k: v for k, v in extra.items() if v is not None},
        }
        call.callbacks.append(params)
        try:
            await self._post(target, params)
        except (aiohttp.ClientError, TimeoutError) as exc:  # Twilio, too, just logs a failed callback
            _log.warning("call %s: status callback %s to %s failed: %s", call.sid, status, target, exc)

    async def _post(self, url: str, params: dict[str, str]) -> str:
        """POST a signed form the way Twilio does; the response body."""
        assert self._http is not None, "use the stand-in as `async with`"
        signature = self._validator.compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature}
        async with self._http.post(url, data=params, headers=headers) as response:
            return await response.text()


def _error(code: int, status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )
