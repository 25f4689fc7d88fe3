"""Telephony adapter: what the edge asks of the phone network (end or transfer a call), and its fakes."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from edge.twiml import refuse
from infra.settings import TwilioSettings

log = logging.getLogger(__name__)


class Telephony(Protocol):
    """Operations on a live call through the carrier's REST API."""

    async def hang_up(self, call_sid: str) -> None:
        """End the call (both legs); errors are logged, not raised: the stream is closing anyway."""
        ...

    async def transfer(self, call_sid: str, target: str) -> bool:
        """Redirect the call to dial ``target``; False (logged) if the carrier refused."""
        ...

    async def say_and_hang_up(self, call_sid: str, message: str) -> None:
        """Leave the stream for TwiML that says ``message`` and hangs up; errors are logged."""
        ...


class TwilioTelephony:
    """Twilio REST: ``calls(sid).update(status="completed")``, run in a thread (the client is sync)."""

    def __init__(self, settings: TwilioSettings) -> None:
        http_client = TwilioHttpClient(timeout=10)
        self._client = Client(
            settings.account_sid, settings.auth_token.get_secret_value(), http_client=http_client
        )
        if settings.api_base_url:
            self._client.api.base_url = settings.api_base_url

    async def hang_up(self, call_sid: str) -> None:
        try:
            await asyncio.to_thread(self._complete, call_sid)
        except Exception:  # the REST API failing must not take the edge down
            log.exception("hang up of %s failed", call_sid)

    def _complete(self, call_sid: str) -> None:
        self._client.calls(call_sid).update(status="completed")

    async def transfer(self, call_sid: str, target: str) -> bool:
        try:
            await asyncio.to_thread(self._redirect, call_sid, target)
        except Exception:  # the REST API failing must not take the edge down
            log.exception("transfer of %s to %s failed", call_sid, target)
            return False
        return True

    def _redirect(self, call_sid: str, target: str) -> None:
        # New TwiML for the live call: Twilio leaves <Connect><Stream> (our stream stops) and
        # dials the target, bridging the caller to it.
        response = VoiceResponse()
        response.dial(target)
        self._client.calls(call_sid).update(twiml=str(response))

    async def say_and_hang_up(self, call_sid: str, message: str) -> None:
        try:
            await asyncio.to_thread(self._say, call_sid, message)
        except Exception:  # the stream is closed next anyway: the caller is not left waiting
            log.exception("the goodbye message for %s failed", call_sid)

    def _say(self, call_sid: str, message: str) -> None:
        self._client.calls(call_sid).update(twiml=refuse(message))


class RecordingTelephony:
    """A fake that remembers what it was asked to do."""

    def __init__(self) -> None:
        self.hung_up: list[str] = []
        self.transferred: list[tuple[str, str]] = []
        self.said: list[tuple[str, str]] = []

    async def hang_up(self, call_sid: str) -> None:
        self.hung_up.append(call_sid)

    async def transfer(self, call_sid: str, target: str) -> bool:
        self.transferred.append((call_sid, target))
        return True

    async def say_and_hang_up(self, call_sid: str, message: str) -> None:
        self.said.append((call_sid, message))
