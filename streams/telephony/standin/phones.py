"""Simulated phones the Twilio stand-in rings: a number registers, waits, is answered, hangs up.

A phone (``voiceagent call simulate --outbound``) registers its number, then long-polls for the
call. When ``Calls.create`` names that number the stand-in rings it, fetches the call's TwiML as
Twilio does on answer and hands it over here; the phone opens the Media Stream the TwiML names
and, when done, hangs up here, which makes the stand-in post the ``completed`` callback. One
registration answers one call.

Routes (JSON):

- ``PUT /phones/{number}``: register (replaces an earlier registration of the number)
- ``GET /phones/{number}/call?wait_s=20``: 200 with the answered call, or 204 if none yet
- ``POST /phones/{number}/hang-up``: end the answered call; the phone is then unregistered
- ``DELETE /phones/{number}``: give up waiting
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

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


@dataclass
class _Line:
    answered: asyncio.Future[Answered] = field(default_factory=asyncio.Future)
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


def phone_routes(phones: Phones, complete: Callable[[str], Awaitable[None]]) -> APIRouter:
    """The phones' control routes; ``complete(sid)`` ends an answered call (posting ``completed``)."""
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
