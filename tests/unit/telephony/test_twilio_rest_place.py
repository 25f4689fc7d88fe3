"""Placing a call: a request that never reached Twilio may be tried again, one that may have is not."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator

import pytest

from infra.process import free_port
from streams.telephony.port import DialError, DialRequest
from streams.telephony.twilio_rest import TwilioTelephony

SID = "AC" + "0" * 32
REQUEST = DialRequest(
    call_id="call-1", tenant_id="t-1", agent_id="a-1", agent_version=1,
    to_number="+15550161234", from_number="+15550100000", time_limit_s=60,
)  # fmt: skip


@contextlib.asynccontextmanager
async def silent_api(*, answer_after_s: float | None) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A socket that takes the whole create request, then answers late (or hangs up on it)."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        received.append(head + await reader.readexactly(length))
        if answer_after_s is not None:
            await asyncio.sleep(answer_after_s)
            body = b'{"sid": "CA1", "status": "queued"}'
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n")
            writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.close()
        with contextlib.suppress(asyncio.CancelledError):
            await server.wait_closed()


async def _place(base_url: str) -> str:
    telephony = TwilioTelephony(SID, "token", "https://edge.example", api_base_url=base_url, timeout_s=0.3)
    try:
        return await asyncio.wait_for(telephony.place(REQUEST), 5)
    finally:
        await telephony.aclose()


@pytest.mark.parametrize("answer_after_s", [2.0, None], ids=["answer-after-the-timeout", "disconnect"])
async def test_a_create_sent_and_unanswered_is_not_tried_again(answer_after_s: float | None) -> None:
    async with silent_api(answer_after_s=answer_after_s) as (base_url, received):
        with pytest.raises(DialError) as raised:
            await _place(base_url)
    (sent,) = received
    assert b"/Calls.json" in sent  # the request went out in full
    assert b"Authorization: Basic " + base64.b64encode(f"{SID}:token".encode()) in sent
    assert not raised.value.retryable
    assert "Twilio may have placed the call" in raised.value.message
    assert "not retried" in raised.value.message


async def test_a_create_that_could_not_connect_may_be_tried_again() -> None:
    with pytest.raises(DialError) as raised:
        await _place(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert raised.value.retryable
    assert "may have placed" not in raised.value.message


async def test_an_answer_within_the_timeout_is_the_calls_sid() -> None:
    async with silent_api(answer_after_s=0.0) as (base_url, _):
        assert await _place(base_url) == "CA1"
