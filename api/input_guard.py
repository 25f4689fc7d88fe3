"""Refuses text nothing downstream can store: NUL characters (PostgreSQL text) and lone surrogates
(UTF-8, so neither Avro nor PostgreSQL) anywhere in a request."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON

_NUL_MARKERS = (b"\x00", b"\\u0000")
NUL_DETAIL = "the request contains a NUL character, which no field accepts"
SURROGATE_DETAIL = (
    "the request contains a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair), "
    "which is not text any field accepts"
)

# Left to right: an escaped backslash (skipped, so `\\ud800` is text), a surrogate pair (a real
# character outside the BMP), or a surrogate escape on its own.
_SURROGATE_ESCAPES = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)


def holds_nul(body: bytes, *, json_escapes: bool = True) -> bool:
    """Whether a body carries a NUL, raw or (in JSON text) escaped as \\u0000."""
    return any(marker in body for marker in (_NUL_MARKERS if json_escapes else _NUL_MARKERS[:1]))


def holds_lone_surrogate(body: bytes) -> bool:
    """Whether JSON text escapes a UTF-16 surrogate without its pair (json.loads accepts it)."""
    if b"\\u" not in body:
        return False
    return any(match.group(1) for match in _SURROGATE_ESCAPES.finditer(body))


def unstorable_text(body: bytes, *, json_escapes: bool = True) -> str | None:
    """Why a body's text cannot be stored (the problem detail), or None."""
    if holds_nul(body, json_escapes=json_escapes):
        return NUL_DETAIL
    if json_escapes and holds_lone_surrogate(body):
        return SURROGATE_DETAIL
    return None


class RejectNulMiddleware:
    """422 for a NUL in the path, the query or a JSON body, or a lone surrogate in a JSON body
    (uploads check their own text)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
        if b"%00" in target or "\x00" in scope.get("path", ""):
            await _refuse(send)
            return
        if not _is_json(scope):
            await self.app(scope, receive, send)
            return
        messages = await _read_body(receive)
        body = b"".join(m.get("body", b"") for m in messages)
        detail = unstorable_text(body)
        if detail is not None:
            await _refuse(send, detail)
            return
        await self.app(scope, _replay(messages, receive), send)


def _is_json(scope: Scope) -> bool:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    content_type = next((v for k, v in headers if k == b"content-type"), b"")
    return b"json" in content_type.lower()


async def _read_body(receive: Receive) -> list[Message]:
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


async def _refuse(send: Send, detail: str = NUL_DETAIL) -> None:
    body: dict[str, Any] = {"type": "about:blank", "title": "Unprocessable Content", "status": 422}
    payload = json.dumps(body | {"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
