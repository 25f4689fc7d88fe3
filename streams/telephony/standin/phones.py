"""Simulated phones on the Twilio stand-in: rung by the platform, or calling it; hanging up.

A phone (``voiceagent call simulate --outbound``) registers its number, then long-polls for the
call. When ``Calls.create`` names that number the stand-in rings it, fetches the call's TwiML as
Twilio does on answer and hands it over here; the phone opens the Media Stream the TwiML names
and, when done, hangs up here, which makes the stand-in post the ``completed`` callback. One
registration answers one call.

A phone also calls in (``voiceagent call simulate``): the stand-in places the incoming call to
the platform's number, asking the number's Voice URL for TwiML (signed, as Twilio does) and
posting the call's ``completed`` to the number's status callback, both named in the request as
they would be in the Twilio console. Because the stand-in holds the call, the platform can
redirect it through the REST API (a transfer): the phone learns where it was transferred to.

Routes (JSON):

- ``PUT /phones/{number}``: register (replaces an earlier registration of the number)
- ``GET /phones/{number}/call?wait_s=20``: 200 with the answered call, or 204 if none yet
- ``POST /phones/{number}/dial``: ``{"to", "voice_url", "status_callback"}``: call in; 201 with
  the answered call (registering the number for it)
- ``GET /phones/{number}/transfer?wait_s=20``: 200 ``{"call_sid", "to"}`` once the platform has
  redirected the call to ``<Dial>`` (its Media Stream has then ended), or 204 if not yet
- ``POST /phones/{number}/hang-up``: end the answered call; the phone is then unregistered
- ``DELETE /phones/{number}``: give up waiting
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

PHONES_PATH = "/phones"


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    """The call a phone picked up: its SID, numbers, and the TwiML the platform answered with."""

    call_sid: str
    twiml: str
    error: str | None = None
    """Why there is no TwiML: the platform's voice URL could not be reached."""
    from_number: str
    to_number: str


class IncomingCall(BaseModel):
    """A phone calling the platform: the number it dials and that number's webhook settings."""

    to: str
    voice_url: str
    status_callback: str | None = None


@dataclass
class _Line:
    answered: asyncio.Future[Answered] = field(default_factory=asyncio.Future)
    transferred: asyncio.Future[str] = field(default_factory=asyncio.Future)
    call_sid: str | None = None


class Phones:
    """Registered numbers, each waiting for one call."""

    def __init__(self) -> None:
        self._lines: dict[str, _Line] = {}

    def register(self, number: str) -> None:
        self.unregister(number)
        self._lines[number] = _Line()

    def unregister(self, number: str) -> str | None:
        """Forget the number; the SID of the call it had picked up, if any."""
        line = self._lines.pop(number, None)
        if line is None:
            return None
        line.answered.cancel()
        line.transferred.cancel()
        return line.call_sid

    def ringing(self, number: str) -> bool:
        """Whether a phone waits for a call to ``number`` (and has not got one yet)."""
        line = self._lines.get(number)
        return line is not None and line.call_sid is None

    def claim(self, number: str, call_sid: str) -> None:
        self._lines[number].call_sid = call_sid

    def answer(self, number: str, answered: Answered) -> None:
        line = self._lines.get(number)
        if line is not None and line.call_sid == answered.call_sid and not line.answered.done():
            line.answered.set_result(answered)

    def transfer(self, number: str, call_sid: str, target: str) -> None:
        """The platform redirected the phone's call to ``<Dial>target``."""
        line = self._lines.get(number)
        if line is not None and line.call_sid == call_sid and not line.transferred.done():
            line.transferred.set_result(target)

    def ended(self, number: str, call_sid: str) -> None:
        """The call ended elsewhere (the platform hung up): the line is free again."""
        line = self._lines.get(number)
        if line is not None and line.call_sid == call_sid and line.answered.done():
            del self._lines[number]

    async def wait(self, number: str, wait_s: float) -> Answered | None:
        """The answered call, once there is one; None after ``wait_s``. KeyError if not registered."""
        line = self._lines[number]
        done, _ = await asyncio.wait({line.answered}, timeout=wait_s)  # never cancels the future
        if not done:
            return None
        if line.answered.cancelled():  # unregistered meanwhile
            raise KeyError(number)
        return line.answered.result()

    async def wait_transfer(self, number: str, wait_s: float) -> tuple[str, str] | None:
        """``(call_sid, target)`` once the phone's call is transferred; None after ``wait_s``.
        KeyError if not registered."""
        line = self._lines[number]
        done, _ = await asyncio.wait({line.transferred}, timeout=wait_s)  # never cancels the future
        if not done:
            return None
        if line.transferred.cancelled() or line.call_sid is None:  # unregistered meanwhile
            raise KeyError(number)
        return line.call_sid, line.transferred.result()


def phone_routes(
    phones: Phones,
    complete: Callable[[str], Awaitable[None]],
    call_in: Callable[[str, IncomingCall], Awaitable[Answered]],
) -> APIRouter:
    """The phones' control routes; ``complete(sid)`` ends an answered call (posting ``completed``),
    ``call_in(number, call)`` places an incoming call from ``number`` and answers it."""
    router = APIRouter(prefix=PHONES_PATH)

    @router.put("/{number}", status_code=201)
    async def register(number: str) -> dict[str, str]:
        phones.register(number)
        return {"number": number}

    @router.get("/{number}/call", response_model=None)
    async def call(number: str, wait_s: float = Query(20.0, ge=0, le=60)) -> Response:
        try:
            answered = await phones.wait(number, wait_s)
        except KeyError:
            return JSONResponse({"error": f"no phone registered for {number}"}, status_code=404)
        if answered is None:
            return Response(status_code=204)
        return JSONResponse(asdict(answered))

    @router.post("/{number}/dial", status_code=201)
    async def dial(number: str, call: IncomingCall) -> dict[str, str | None]:
        return asdict(await call_in(number, call))

    @router.get("/{number}/transfer", response_model=None)
    async def transfer(number: str, wait_s: float = Query(20.0, ge=0, le=60)) -> Response:
        try:
            transferred = await phones.wait_transfer(number, wait_s)
        except KeyError:
            return JSONResponse({"error": f"no phone registered for {number}"}, status_code=404)
        if transferred is None:
            return Response(status_code=204)
        return JSONResponse({"call_sid": transferred[0], "to": transferred[1]})

    @router.post("/{number}/hang-up")
    async def hang_up(number: str) -> dict[str, str | None]:
        call_sid = phones.unregister(number)
        if call_sid is not None:
            await complete(call_sid)
        return {"call_sid": call_sid}

    @router.delete("/{number}", status_code=204)
    async def unregister(number: str) -> None:
        phones.unregister(number)

    return router
