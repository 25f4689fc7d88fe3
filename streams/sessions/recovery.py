"""What went wrong with a Live connection, whether to retry, and what the caller hears meanwhile."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

import pydantic
from google.genai import errors
from websockets.exceptions import ConnectionClosed, InvalidHandshake

log = logging.getLogger(__name__)

MALFORMED_CODE = 1007
"""Recorded when the server sent a message we cannot parse: RFC 6455's "invalid payload data"."""
ABNORMAL_CODE = 1006
CONFIG_REFUSED_CODE = 4400
"""Recorded when google-genai refused the Live config we built before anything was sent: our own
code in WebSocket's private range. Retrying cannot help; the agent version must be fixed."""

APOLOGY_PROMPT = (
    "The line had a short technical problem and the caller may have missed something. "
    "Apologise in one short sentence, then carry on where the conversation left off."
)
GOODBYE_TEXT = (
    "Sorry, we are having technical difficulties and cannot continue this call. "
    "Please call again later. Goodbye."
)


class ModelFailure(Exception):  # noqa: N818 - an outcome, named like one
    """The Live connection ended badly: a close from the service, a lost socket, bad data."""

    def __init__(self, code: int | None, detail: str, in_setup: bool = False) -> None:
        super().__init__(code, detail)
        self.code, self.detail, self.in_setup = code, detail, in_setup

    @property
    def quota(self) -> bool:
        text = self.detail.lower()
        return self.code == 429 or "resource_exhausted" in text or "quota" in text

    @property
    def final(self) -> bool:
        """Retrying cannot help (a refused key, an exhausted quota): end the call instead."""
        refused = self.code == 1008 and "handle" not in self.detail.lower()
        return refused or self.code in (401, 403, CONFIG_REFUSED_CODE)

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def classify(err: BaseException, *, in_setup: bool = False) -> ModelFailure | None:
    """A ModelFailure for what the Live client raised, or None for anything else (a bug)."""
    match err:
        case errors.APIError():
            code = err.code if isinstance(err.code, int) else None
            return ModelFailure(code, str(err.message or err.status or err), in_setup)
        case ConnectionClosed():
            # send_realtime_input after the server closed: websockets' error, not APIError.
            received = err.rcvd
            code = received.code if received is not None else ABNORMAL_CODE
            return ModelFailure(code, received.reason if received else "connection lost", in_setup)
        case OSError() | TimeoutError() | InvalidHandshake():
            return ModelFailure(None, f"cannot reach the model: {type(err).__name__}: {err}", in_setup)
        case pydantic.ValidationError() | RecursionError() if in_setup:
            # The agent's tools or settings make a config google-genai will not send (the API
            # validates on publish; this catches versions published before it knew better).
            detail = f"the Live config was refused before connecting: {err}"[:300]
            return ModelFailure(CONFIG_REFUSED_CODE, detail, in_setup)
    return None


def malformed(err: Exception) -> ModelFailure:
    """receive() could not turn a server frame into a message (not JSON, unknown shape, bad types)."""
    return ModelFailure(MALFORMED_CODE, f"malformed server message: {type(err).__name__}: {err}"[:300])


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """What to do after the call's Live connection failed (for the failures-th time in a row)."""

    give_up: bool
    """Say goodbye and end the call instead of reconnecting."""
    drop_handle: bool
    """Resumption failed: the next session starts fresh, primed with the transcript."""


def retry(failure: ModelFailure, failures: int, *, resuming: bool, max_reconnects: int) -> Retry:
    # A handle the service no longer knows is refused at setup with 1008; any second setup
    # failure while resuming is treated the same, so a bad handle cannot use up every retry.
    drop = failure.in_setup and resuming and (failures > 1 or failure.code == 1008)
    give_up = failure.final or failures > (1 if failure.quota else max_reconnects)
    return Retry(give_up=give_up, drop_handle=drop)


def backoff_s(failures: int) -> float:
    return float(min(0.1 * 2**failures, 1.0))


@functools.cache
def _goodbye_pcm() -> bytes:
    # espeak-ng through the stand-in's voice module: the model is unreachable, so the worker
    # speaks this one line itself. Synthesised once per process.
    from streams.standin.voice import reply_pcm

    return reply_pcm(GOODBYE_TEXT)


async def goodbye_pcm() -> bytes:
    """The apology spoken when the model cannot be reached at all; empty if synthesis fails."""
    try:
        return await asyncio.to_thread(_goodbye_pcm)
    except Exception:  # no voice must never mean no hang-up
        log.exception("could not synthesise the fallback goodbye")
        return b""
