"""Agents' webhook tools: the signed request, the answer's shapes, and endpoints that misbehave."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from http_endpoints import Request, dripping, endpoint, replying, response, silent

from infra.settings import Settings
from schemas.agents import ToolSpec
from streams.sessions.webhook_tool import (
    MAX_RESPONSE_BYTES,
    TOOL_CALL_HEADER,
    ToolInvocation,
    WebhookToolError,
    call_webhook,
    missing_arguments,
)
from streams.sessions.wiring import webhook_tools
from streams.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, tenant_signing_key, verify

SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"day": {"type": "string"}, "party": {"type": "integer"}},
        "required": ["day"],
    }
)
INVOCATION = ToolInvocation(
    tenant_id="t-1",
    agent_id="agent-1",
    call_id="call-1",
    tool_call_id="fc-1",
    name="book",
    arguments={"day": "mon"},
)


def _spec(url: str, timeout_ms: int = 2000) -> ToolSpec:
    return ToolSpec(
        name="book",
        description="Book a table",
        parameters_json=SCHEMA,
        webhook_url=url,
        timeout_ms=timeout_ms,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


async def _call(client: httpx.AsyncClient, url: str, timeout_ms: int = 2000) -> dict[str, object]:
    return await call_webhook(client, _spec(url, timeout_ms), INVOCATION, secret="s3cret", allow_private=True)


async def test_the_request_is_signed_and_names_the_call_and_the_arguments(client: httpx.AsyncClient) -> None:
    async with endpoint(replying(200, b'{"booked": true, "table": 7}')) as hook:
        answer = await _call(client, hook.url)
    assert answer == {"booked": True, "table": 7}
    (request,) = hook.requests
    body = json.loads(request.body)
    assert body == {
        "tool": "book",
        "tool_call_id": "fc-1",
        "call_id": "call-1",
        "agent_id": "agent-1",
        "tenant_id": "t-1",
        "arguments": {"day": "mon"},
    }
    timestamp = int(request.headers[TIMESTAMP_HEADER.lower()])
    signature = request.headers[SIGNATURE_HEADER.lower()]
    assert verify(
        tenant_signing_key("s3cret", "t-1"), timestamp, request.body, signature, now=int(time.time())
    )
    assert not verify("other", timestamp, request.body, signature, now=int(time.time()))
    assert request.headers[TOOL_CALL_HEADER.lower()] == "fc-1"


async def test_the_request_verifies_with_its_tenants_key_not_anothers_nor_the_platform_secret(
    client: httpx.AsyncClient,
) -> None:
    # A key every tenant held would let any of them sign a request to another's tool (ADR 27).
    async with endpoint(replying(200, b"{}")) as hook:
        await _call(client, hook.url)
    (request,) = hook.requests
    timestamp = int(request.headers[TIMESTAMP_HEADER.lower()])
    signature = request.headers[SIGNATURE_HEADER.lower()]
    now = int(time.time())
    assert verify(tenant_signing_key("s3cret", "t-1"), timestamp, request.body, signature, now)
    assert not verify(tenant_signing_key("s3cret", "t-2"), timestamp, request.body, signature, now)
    assert not verify("s3cret", timestamp, request.body, signature, now)


@pytest.mark.parametrize(("body", "expected"), [(b"[1, 2]", {"result": [1, 2]}), (b'"ok"', {"result": "ok"})])
async def test_an_answer_that_is_not_an_object_is_wrapped(
    client: httpx.AsyncClient, body: bytes, expected: dict[str, object]
) -> None:
    async with endpoint(replying(200, body)) as hook:
        assert await _call(client, hook.url) == expected


async def _failure(client: httpx.AsyncClient, url: str, timeout_ms: int = 2000) -> str:
    with pytest.raises(WebhookToolError) as caught:
        await _call(client, url, timeout_ms)
    return str(caught.value)


async def test_an_error_status_fails_the_tool_with_the_status_and_the_start_of_the_body(
    client: httpx.AsyncClient,
) -> None:
    async with endpoint(replying(503, b"overloaded, try later")) as hook:
        assert await _failure(client, hook.url) == "HTTP 503: overloaded, try later"


async def test_an_answer_that_is_not_json_fails_the_tool(client: httpx.AsyncClient) -> None:
    async with endpoint(replying(200, b"<html>ok</html>")) as hook:
        assert "not JSON" in await _failure(client, hook.url)


async def test_an_answer_over_the_size_limit_fails_without_reading_it_all(client: httpx.AsyncClient) -> None:
    big = b'"' + b"x" * (MAX_RESPONSE_BYTES * 4) + b'"'
    async with endpoint(replying(200, big)) as hook:
        assert "larger than" in await _failure(client, hook.url)
    # An answer that never ends: read whole before its size is checked, it ran into the
    # timeout instead (a finite one was read whole and refused all the same).
    async with endpoint(_endless) as hook:
        assert "larger than" in await _failure(client, hook.url, timeout_ms=2000)


async def _endless(_: Request, writer: asyncio.StreamWriter) -> None:
    """A JSON string in chunks of 64 KiB, 100 a second, that never ends."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(b'1\r\n"\r\n')
    while True:
        writer.write(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("answer", [dripping, silent], ids=["drips a byte at a time", "never answers"])
async def test_the_timeout_bounds_the_whole_request_not_each_read(
    client: httpx.AsyncClient, answer: object
) -> None:
    async with endpoint(answer) as hook:  # type: ignore[arg-type]
        started = asyncio.get_running_loop().time()
        error = await _failure(client, hook.url, timeout_ms=300)
        elapsed = asyncio.get_running_loop().time() - started
    assert error == "no complete answer within 0.3s"
    assert elapsed < 3  # a per-read timeout would wait for the whole 50 s drip


async def test_an_unreachable_endpoint_fails_the_tool(client: httpx.AsyncClient) -> None:
    async with endpoint(replying(200, b"{}")) as hook:
        url = hook.url
    assert "ConnectError" in await _failure(client, url)  # the server is gone


async def test_a_private_address_is_refused_before_anything_is_sent(client: httpx.AsyncClient) -> None:
    async with endpoint(replying(200, b"{}")) as hook:
        with pytest.raises(WebhookToolError, match=r"private address \(127\.0\.0\.1\)"):
            await call_webhook(client, _spec(hook.url), INVOCATION, secret="s", allow_private=False)
    assert hook.requests == []


async def test_a_redirect_is_not_followed_even_by_a_client_that_would() -> None:
    # Following it would let a public URL bounce the signed request to a private address.
    async def redirect(_: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(response(307, b"", location="http://169.254.169.254/"))

    async with endpoint(redirect) as hook, httpx.AsyncClient(follow_redirects=True) as following:
        assert (await _failure(following, hook.url)).startswith("HTTP 307")


def test_missing_required_arguments_are_named() -> None:
    spec = _spec("http://x.example")
    assert missing_arguments(spec, {"party": 2}) == ["day"]
    assert missing_arguments(spec, {"day": "mon"}) == []
    assert missing_arguments(ToolSpec(name="x", description="", parameters_json="{"), {}) == []


PROD = {
    "env": "prod",
    "twilio": {"auth_token": "t0k3n-real"},
    "gemini": {"api_key": "AIza-real-key"},
    "api": {"bootstrap_api_key": "vk_real_admin_key"},
}


async def test_a_production_worker_needs_a_signing_secret_and_keeps_off_private_addresses() -> None:
    with pytest.raises(ValueError, match="VOICE_STREAMS__TOOL_WEBHOOK_SECRET"):
        webhook_tools(Settings.model_validate(PROD))
    with pytest.raises(ValueError, match="known default"):  # as the platform's other secrets
        webhook_tools(Settings.model_validate(PROD | {"streams": {"tool_webhook_secret": "changeme"}}))
    hooks = webhook_tools(Settings.model_validate(PROD | {"streams": {"tool_webhook_secret": "k"}}))
    assert (hooks.secret, hooks.allow_private) == ("k", False)
    await hooks.client.aclose()
    dev = webhook_tools(Settings.model_validate({"env": "dev"}))
    assert dev.allow_private
    await dev.client.aclose()


async def test_the_tools_own_timeout_stands_over_the_clients_default() -> None:
    # httpx's default (5 s a read) once cut tools allowed up to 30 s short; a client whose
    # default is 0.2 s shows the same in a fraction of the time.
    async def slow(_: Request, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.6)
        writer.write(response(200, b'{"booked": true}'))

    async with httpx.AsyncClient(timeout=0.2) as impatient, endpoint(slow) as hook:
        assert await _call(impatient, hook.url, timeout_ms=3000) == {"booked": True}


@pytest.mark.parametrize("body", [b'{"price": NaN}', b'{"price": Infinity}', b'{"price": 1e999}'])
async def test_an_answer_with_a_number_json_does_not_have_fails_the_tool(
    client: httpx.AsyncClient, body: bytes
) -> None:
    # Passed on, it would make the tool response to Gemini something that is not JSON.
    async with endpoint(replying(200, body)) as hook:
        assert "not JSON" in await _failure(client, hook.url)
