"""A simulated phone's side of the Twilio stand-in: be rung or call in, read the TwiML, hang up."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from streams.telephony.standin.phones import PHONES_PATH, Answered


class TwiMLError(ValueError):
    """The TwiML does not connect the call to a Media Stream."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamTarget:
    """What ``<Connect><Stream url=…>`` tells Twilio: where to stream, with which parameters."""

    url: str
    parameters: dict[str, str]


def connect_stream(twiml: str) -> StreamTarget:
    """Read ``<Response><Connect><Stream url><Parameter name value/>…`` as Twilio does."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as exc:
        raise TwiMLError(f"not TwiML ({exc}): {twiml[:300]!r}") from exc
    stream = root.find("./Connect/Stream")
    if root.tag != "Response" or stream is None or not stream.get("url"):
        raise TwiMLError(f"no <Connect><Stream url=…> in the TwiML: {twiml[:300]!r}")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return StreamTarget(url=stream.get("url", ""), parameters=parameters)


class PhoneLine:
    """One number registered with the stand-in; ``http`` is an ``httpx.AsyncClient``."""

    def __init__(self, standin_url: str, number: str, http: httpx.AsyncClient) -> None:
        self.number = number
        self.standin_url = standin_url.rstrip("/")  # for messages that say which stand-in failed
        self._url = f"{self.standin_url}{PHONES_PATH}/{quote(number)}"
        self._http = http

    async def register(self) -> None:
        (await self._http.put(self._url)).raise_for_status()

    async def answered(self, timeout_s: float) -> Answered:
        """The call once the stand-in has answered it; TimeoutError if none rings in time."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            wait_s = min(20.0, left)
            response = await self._http.get(
                f"{self._url}/call", params={"wait_s": f"{wait_s:.1f}"}, timeout=wait_s + 10
            )
            response.raise_for_status()
            if response.status_code == 200:
                return Answered(**response.json())
        raise TimeoutError(f"no call rang {self.number} within {timeout_s:g}s")

    async def dial(self, to: str, *, voice_url: str, status_callback: str | None) -> Answered:
        """Call ``to``, whose Voice URL and status callback (as set in Twilio's console) are given.

        The stand-in asks ``voice_url`` for TwiML, as Twilio does, and the call is answered."""
        body = {"to": to, "voice_url": voice_url, "status_callback": status_callback}
        response = await self._http.post(f"{self._url}/dial", json=body, timeout=30)
        response.raise_for_status()
        return Answered(**response.json())

    async def transferred(self, timeout_s: float) -> str | None:
        """The number the platform transferred the call to (its Media Stream has then ended);
        None if it was not transferred within ``timeout_s``, or the call is over."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            wait_s = min(20.0, left)
            response = await self._http.get(
                f"{self._url}/transfer", params={"wait_s": f"{wait_s:.1f}"}, timeout=wait_s + 10
            )
            if response.status_code == 404:  # the call ended and the line was freed
                return None
            response.raise_for_status()
            if response.status_code == 200:
                return str(response.json()["to"])
        return None

    async def hang_up(self) -> None:
        """End the call (the stand-in posts ``completed``) and free the number."""
        (await self._http.post(f"{self._url}/hang-up")).raise_for_status()
