"""The Twilio adapter: ``calls.create`` through the real twilio client, asynchronously."""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from streams.telephony.port import DialError, DialRequest, status_url, voice_url

log = logging.getLogger(__name__)

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]

# Twilio error codes that mean "this request will never work as sent".
_PERMANENT_CODES = frozenset(
    {
        20003,  # authentication failed
        20404,  # resource not found
        21201,
        21202,
        21203,  # bad account / phone number formats
        21205,
        21206,
        21207,
        21208,
        21209,
        21210,  # caller id not verified
        21211,  # invalid 'To'
        21212,  # invalid caller id
        21213,
        21214,  # 'To' not reachable / not a valid phone number
        21215,  # geo permissions
        21216,  # blacklisted number
        21217,  # not a valid phone number
        13224,
        13225,
        13227,
    }
)
_RETRYABLE_CODES = frozenset({20429, 20500, 20503, 31000, 31005})

_CALL_OVER_CODES = frozenset(
    {
        20404,  # resource not found: the call is gone
        21220,  # "Call is not in-progress. Cannot redirect." (HTTP 400): it has ended
    }
)
"""Answers to ending a call that say it is over already: what ending it wanted, not a failure."""


def retryable(exc: TwilioRestException) -> bool:
    """Whether a REST failure may pass on a later attempt: throttling, 5xx, transient codes."""
    if exc.code in _RETRYABLE_CODES:
        return True
    if exc.code in _PERMANENT_CODES:
        return False
    return bool(exc.status == 429 or exc.status >= 500)


_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
"""Errors raised before a connection to the API existed: the request never left, so it may be sent again."""

_UNREACHABLE = (TwilioException, aiohttp.ClientError, OSError, TimeoutError)
"""Errors that say the API was not reached or did not answer (TwilioRestException is caught first)."""

MAY_HAVE_DIALLED = (
    "Twilio may have placed the call: the request was sent and no answer came back ({error}); "
    "it was not retried, to avoid dialling the person twice"
)


def _refused(exc: TwilioRestException) -> DialError:
    return DialError(str(exc.msg), code=exc.code, status=exc.status, retryable=retryable(exc))


def _unreachable(exc: BaseException) -> DialError:
    # Unreachable API: try again later.
    return DialError(f"{type(exc).__name__}: {exc}", code=None, status=None, retryable=True)


def _unanswered(exc: BaseException) -> DialError:
    # A timeout or a dropped connection after the request went out says nothing of whether
    # Twilio created the call; a second create could ring the same person twice.
    error = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return DialError(MAY_HAVE_DIALLED.format(error=error), code=None, status=None, retryable=False)


class RedirectingHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Holds every request to a connect and a total timeout, and sends requests meant for
    *.twilio.com to another base URL when given one (a local fake of the API)."""

    def __init__(self, base_url: str | None, *, timeout: aiohttp.ClientTimeout, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._base = urlsplit(base_url) if base_url else None
        self._limits = timeout

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the twilio client's signature
        allow_redirects: bool = False,
    ) -> Response:
        # The twilio client passes timeout=None on every call, which aiohttp reads as "no
        # limit": the client's own timeout is never applied, and a hung API held a dial forever.
        parts = urlsplit(url)
        if self._base is not None and (parts.hostname or "").endswith("twilio.com"):
            url = urlunsplit((self._base.scheme, self._base.netloc, parts.path, parts.query, ""))
        limits = (
            self._limits
            if timeout is None
            else aiohttp.ClientTimeout(total=timeout, connect=self._limits.connect)
        )
        if auth is not None:
            token = base64.b64encode(":".join(auth).encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
        kwargs: dict[str, Any] = {
            "method": method.upper(),
            "url": url,
            "params": params,
            "data": data,
            "headers": headers,
            "timeout": limits,
            "allow_redirects": allow_redirects,
        }
        self.log_request(kwargs)
        async with self.session.request(**kwargs) as response:
            text = await response.text()
        self.log_response(response.status, response)
        return Response(response.status, text, response.headers)


class TwilioTelephony:
    """Places calls with ``calls.create_async``: TwiML from the edge, callbacks, AMD, time limit."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        public_base_url: str,
        *,
        api_base_url: str | None = None,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
    ) -> None:
        self._credentials = (account_sid, auth_token)
        # A connect timeout shorter than the total one: running out while connecting is then a
        # ConnectionTimeoutError (nothing sent, safe to try again), not a bare TimeoutError.
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(connect_timeout_s, timeout_s / 2))
        self._api_base_url = api_base_url
        self._http: RedirectingHttpClient | None = None
        self._client_: Client | None = None
        self._public = public_base_url

    @property
    def _client(self) -> Client:
        # aiohttp wants a running loop, so the client is made on first use, not in __init__.
        if self._client_ is None:
            self._http = RedirectingHttpClient(self._api_base_url, timeout=self._timeout)
            self._client_ = Client(*self._credentials, http_client=self._http)
        return self._client_

    async def place(self, request: DialRequest) -> str:
        try:
            call = await self._client.calls.create_async(
                to=request.to_number,
                from_=request.from_number,
                url=voice_url(self._public, request),
                method="POST",
                status_callback=status_url(self._public, request),
                status_callback_event=STATUS_EVENTS,
                status_callback_method="POST",
                **({"machine_detection": request.machine_detection} if request.machine_detection else {}),
                time_limit=request.time_limit_s,
            )
        except TwilioRestException as exc:
            raise _refused(exc) from exc
        except _NOT_SENT as exc:
            raise _unreachable(exc) from exc
        except _UNREACHABLE as exc:
            raise _unanswered(exc) from exc
        return str(call.sid)

    async def hang_up(self, call_sid: str) -> None:
        await self._update(call_sid, "completed")

    async def cancel(self, call_sid: str) -> None:
        # Twilio's "canceled" ends a queued or ringing call and does not touch one in progress:
        # an answered call is the edge's to hang up, over its media stream.
        await self._update(call_sid, "canceled")

    async def _update(self, call_sid: str, status: str) -> None:
        try:
            await self._client.calls(call_sid).update_async(status=status)
        except TwilioRestException as exc:
            if exc.status != 404 and exc.code not in _CALL_OVER_CODES:
                raise _refused(exc) from exc
            log.info(
                "call %s was already over, nothing to set %s (Twilio %s %s: %s)",
                call_sid,
                status,
                exc.status,
                exc.code,
                exc.msg,
            )
        except _UNREACHABLE as exc:
            raise _unreachable(exc) from exc

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
