"""A local fake of Twilio's REST API for outbound calls, driven by the real twilio client.

It answers ``POST /2010-04-01/Accounts/{AC}/Calls.json`` with Twilio's call JSON (or Twilio's
error JSON), and ``POST .../Calls/{sid}.json`` (hang up). What happens to each call is
scripted per number: ``answer``, ``busy``, ``no-answer``, ``failed``, ``machine``, or
``Refuse(code, status)``. The fake then POSTs the status callbacks the call asked for
(initiated, ringing, in-progress with ``AnsweredBy``, and an end), form-encoded and signed with
twilio's ``RequestValidator`` scheme, to the call's StatusCallback or to ``callback_url``.
Answered calls stay up until ``complete(sid)``, a REST hang-up, or ``answer_hold_s``.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from twilio.request_validator import RequestValidator


@dataclass(frozen=True)
class Refuse:
    """Answer the create request with Twilio's error JSON."""

    code: int
    status: int = 400
    message: str = "refused by the fake"


Outcome = str | Refuse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeCall:
    sid: str
    to: str
    from_: str
    url: str
    status_callback: str | None
    events: list[str]
    outcome: str
    machine_detection: str | None
    time_limit: int | None
    status: str = "queued"
    callbacks: list[dict[str, str]] = field(default_factory=list)
    sequence: int = 0


class FakeTwilio:
    """The fake API; ``async with FakeTwilio(token) as fake:`` serves it on a free port."""

    def __init__(
        self,
        auth_token: str,
        *,
        callback_url: str | None = None,
        answer_hold_s: float | None = None,
        ring_s: float = 0.0,
        fetch_twiml: bool = False,
    ) -> None:
        self.auth_token = auth_token
        self.callback_url = callback_url
        self.answer_hold_s = answer_hold_s
        self.ring_s = ring_s
        self.fetch_twiml = fetch_twiml
        self.port = free_port()
        self.calls: dict[str, FakeCall] = {}
        self.create_requests: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.twiml: dict[str, str] = {}
        self.live_peak: dict[str, int] = defaultdict(int)
        self._live: dict[str, set[str]] = defaultdict(set)
        self._scripts: dict[str, deque[Outcome]] = defaultdict(deque)
        self._sids = (f"CA{n:032x}" for n in itertools.count(1))
        self._validator = RequestValidator(auth_token)
        # aiohttp, not httpx: httpcore scans every pooled connection on each request, which
        # made this fake the bottleneck of the dialer bench at a few hundred callbacks/s.
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: uvicorn.Server | None = None
        self._serve: asyncio.Task[None] | None = None
        self.app = self._build()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, number: str, *outcomes: Outcome) -> None:
        """What the next calls to ``number`` do, in order; then ``answer``."""
        self._scripts[number].extend(outcomes)

    def live(self, key: str = "*") -> int:
        """Calls created and not yet ended (``key``: a From number, or ``*`` for all)."""
        return len(self._live[key])

    async def __aenter__(self) -> FakeTwilio:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0))
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._serve = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
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
        app = FastAPI()

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
                await self.complete(sid)
            return JSONResponse(self._json(account, call))

        return app

    def _create(self, account: str, pairs: list[tuple[str, str]]) -> JSONResponse:
        form: dict[str, Any] = dict(pairs)
        form["StatusCallbackEvent"] = [v for k, v in pairs if k == "StatusCallbackEvent"]
        self.create_requests.append(form)
        queue = self._scripts[form.get("To", "")]
        outcome = queue.popleft() if queue else "answer"
        if isinstance(outcome, Refuse):
            self.refused.append(form)
            return _error(outcome.code, outcome.status, outcome.message)
        call = FakeCall(
            sid=next(self._sids),
            to=form.get("To", ""),
            from_=form.get("From", ""),
            url=form.get("Url", ""),
            status_callback=form.get("StatusCallback"),
            events=form["StatusCallbackEvent"],
            outcome=outcome,
            machine_detection=form.get("MachineDetection"),
            time_limit=int(form["TimeLimit"]) if form.get("TimeLimit") else None,
        )
        self.calls[call.sid] = call
        for key in ("*", call.from_):
            self._live[key].add(call.sid)
            self.live_peak[key] = max(self.live_peak[key], len(self._live[key]))
        task = asyncio.create_task(self._progress(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return JSONResponse(self._json(account, call), status_code=201)

    def _json(self, account: str, call: FakeCall) -> dict[str, Any]:
        return {
            "sid": call.sid,
            "account_sid": account,
            "to": call.to,
            "from": call.from_,
            "status": call.status,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account}/Calls/{call.sid}.json",
        }

    async def _progress(self, call: FakeCall) -> None:
        await self._callback(call, "initiated", "initiated")
        await self._callback(call, "ringing", "ringing")
        if self.ring_s:
            await asyncio.sleep(self.ring_s)
        if call.outcome in ("busy", "no-answer", "failed"):
            await self._end(call, call.outcome)
            return
        answered_by = None
        if call.machine_detection:
            answered_by = "machine_end_beep" if call.outcome == "machine" else "human"
        if self.fetch_twiml and call.url:
            await self._fetch_twiml(call, answered_by)
        await self._callback(call, "answered", "in-progress", AnsweredBy=answered_by)
        if self.answer_hold_s is not None:
            await asyncio.sleep(self.answer_hold_s)
            await self.complete(call.sid)

    async def complete(self, sid: str, duration_s: int = 1) -> None:
        """The callee (or the API) hangs up an answered call."""
        call = self.calls[sid]
        if call.status == "in-progress":
            await self._end(call, "completed", CallDuration=str(duration_s))

    async def _end(self, call: FakeCall, status: str, **extra: str | None) -> None:
        for key in ("*", call.from_):
            self._live[key].discard(call.sid)
        await self._callback(call, "completed", status, **extra)

    async def _fetch_twiml(self, call: FakeCall, answered_by: str | None) -> None:
        params = {"CallSid": call.sid, "From": call.from_, "To": call.to, "CallStatus": "in-progress"}
        if answered_by:
            params["AnsweredBy"] = answered_by
        self.twiml[call.sid] = await self._post(call.url, params)

    async def _callback(self, call: FakeCall, event: str, status: str, **extra: str | None) -> None:
        call.status = status
        if event != "completed" and event not in call.events:
            return
        target = self.callback_url or call.status_callback
        if not target:
            return
        call.sequence += 1
        params = {
            "CallSid": call.sid,
            "AccountSid": "AC00000000000000000000000000000000",
            "From": call.from_,
            "To": call.to,
            "CallStatus": status,
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(call.sequence - 1),
            **{k: v for k, v in extra.items() if v is not None},
        }
        call.callbacks.append(params)
        await self._post(target, params)

    async def _post(self, url: str, params: dict[str, str]) -> str:
        """POST a signed form the way Twilio does; the response body."""
        assert self._http is not None, "use the fake as `async with`"
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
