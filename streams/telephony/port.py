"""The telephony port the dialer depends on; the Twilio adapter and test fakes implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode


@dataclass(frozen=True, slots=True, kw_only=True)
class DialRequest:
    """One outbound attempt: who calls whom, for which call, and for how long at most."""

    call_id: str
    tenant_id: str
    agent_id: str
    agent_version: int
    to_number: str
    from_number: str
    time_limit_s: int
    record: bool = False
    machine_detection: str | None = "Enable"
    """Twilio answering-machine detection: ``Enable`` answers ``machine_start`` as soon as it
    hears a machine (to hang up at once), ``DetectMessageEnd`` waits for the greeting's end and
    beep (to leave a message after it), None asks for none (the agent talks to whoever answers)."""


class DialError(Exception):
    """The provider did not place the call; ``retryable`` says whether trying later may work."""

    def __init__(self, message: str, *, code: int | None, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retryable = retryable


class Telephony(Protocol):
    """Places and ends outbound calls."""

    async def place(self, request: DialRequest) -> str:
        """Create the call; return the provider's call SID, or raise DialError."""
        ...

    async def hang_up(self, call_sid: str) -> None:
        """End a call in progress (answering machine under the hang-up policy); one already over
        is no error."""
        ...

    async def cancel(self, call_sid: str) -> None:
        """End a call nobody has answered yet; one answered meanwhile is left as it is, one
        already over is no error."""
        ...

    async def aclose(self) -> None: ...


def voice_url(public_base_url: str, request: DialRequest) -> str:
    """The edge's /twilio/voice URL with the call's identity (docs/audio-bridge.md, outbound)."""
    query = {
        "call_id": request.call_id,
        "tenant_id": request.tenant_id,
        "agent_id": request.agent_id,
        "agent_version": str(request.agent_version),
        "direction": "outbound",
    }
    if request.record:
        query["record"] = "true"
    return f"{public_base_url.rstrip('/')}/twilio/voice?{_sorted_query(query)}"


def status_url(public_base_url: str, request: DialRequest) -> str:
    """The edge's /twilio/status URL carrying the call id, so callbacks join the right call."""
    query = _sorted_query({"call_id": request.call_id, "tenant_id": request.tenant_id})
    return f"{public_base_url.rstrip('/')}/twilio/status?{query}"


def _sorted_query(query: dict[str, str]) -> str:
    """The query with its keys in order: Twilio is reported to sort a URL's query before it
    requests it but to sign it as given (twilio-php #790, twilio-node #1079), which the edge's
    signature check would refuse; a sorted query reads the same both ways."""
    return urlencode(sorted(query.items()))
