"""Webhook delivery against bad endpoints: every outcome is a recorded attempt, bounded in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx

from schemas.dialer import WebhookDeliveryAttempted
from schemas.ids import AgentId, CallId, TenantId
from streams.dialer.policy import RetryPolicy
from streams.webhooks.delivery import Webhook, deliver

THREE_TRIES = RetryPolicy(max_attempts=3, base_s=0.01, factor=1.0, cap_s=0.01)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _hook(url: str) -> Webhook:
    return Webhook(
        tenant_id=TenantId("t1"),
        agent_id=AgentId("agt_1"),
        call_id=CallId("call_1"),
        url=url,
        event_type="call.ended",
        payload={"call_id": "call_1"},
    )


class Recorder:
    """The attempts ``deliver`` records, in order."""

    def __init__(self) -> None:
        self.attempts: list[WebhookDeliveryAttempted] = []

    async def __call__(self, attempt: WebhookDeliveryAttempted) -> None:
        self.attempts.append(attempt)


@asynccontextmanager
async def _endpoint(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/hook"


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    await reader.readexactly(int(lengths[0].split(b":", 1)[1]))


async def test_a_url_httpx_cannot_parse_is_one_recorded_attempt_without_retries() -> None:
    recorder = Recorder()
    async with httpx.AsyncClient() as client:
        delivered = await deliver(
            _hook("http://[::1"), client, "secret", THREE_TRIES, recorder, allow_private=True
        )
    assert delivered is False
    (attempt,) = recorder.attempts
    assert (attempt.error or "").startswith("InvalidURL")
    assert (attempt.succeeded, attempt.status_code, attempt.next_attempt_at) == (False, None, None)


async def test_an_endpoint_dripping_its_status_line_is_cut_off_at_the_attempt_timeout() -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                writer.write(bytes([byte]))  # each byte well within the per-read timeout
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionError, OSError):
            pass
        writer.close()

    recorder = Recorder()
    one_try = RetryPolicy(max_attempts=1, base_s=0.01, factor=1.0, cap_s=0.01)
    async with _endpoint(drip) as url, httpx.AsyncClient() as client:
        started = time.monotonic()
        delivered = await deliver(
            _hook(url), client, "secret", one_try, recorder, timeout_s=0.5, allow_private=True
        )
        elapsed = time.monotonic() - started
    assert delivered is False
    assert elapsed < 2.0, f"an attempt with timeout_s=0.5 took {elapsed:.1f}s"
    (attempt,) = recorder.attempts
    assert (attempt.error or "").startswith("timed out after 0.5s")


async def test_only_the_status_is_taken_and_an_endless_body_is_never_read() -> None:
    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
        try:
            while True:
                writer.write(chunk)
                await writer.drain()
                sent += 64 * 1024
        except (ConnectionError, OSError):
            pass
        writer.close()

    recorder = Recorder()
    async with _endpoint(endless) as url, httpx.AsyncClient() as client:
        delivered = await asyncio.wait_for(
            deliver(_hook(url), client, "secret", THREE_TRIES, recorder, timeout_s=2.0, allow_private=True),
            10,
        )
        await asyncio.sleep(0.1)
    assert delivered is True
    (attempt,) = recorder.attempts
    assert (attempt.succeeded, attempt.status_code, attempt.error) == (True, 200, None)
    assert sent < 32 * 1024 * 1024, f"{sent // 2**20} MiB of the response went somewhere"


async def test_a_refusing_endpoint_is_retried_per_the_policy() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    recorder = Recorder()
    async with _endpoint(refuse) as url, httpx.AsyncClient() as client:
        delivered = await deliver(_hook(url), client, "secret", THREE_TRIES, recorder, allow_private=True)
    assert delivered is False
    assert [(a.attempt, a.status_code, a.error) for a in recorder.attempts] == [
        (n, 503, "HTTP 503") for n in (1, 2, 3)
    ]
    assert [a.next_attempt_at is None for a in recorder.attempts] == [False, False, True]


async def test_a_private_destination_is_one_recorded_refusal_and_nothing_is_sent() -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(100))
        writer.close()

    recorder = Recorder()
    async with _endpoint(handler) as url, httpx.AsyncClient() as client:
        delivered = await deliver(_hook(url), client, "secret", THREE_TRIES, recorder)
    assert delivered is False
    (attempt,) = recorder.attempts
    assert attempt.error == f"refused: {url} resolves to a private address (127.0.0.1)"
    assert attempt.next_attempt_at is None
    assert received == []


async def test_a_url_that_does_not_parse_is_recorded_with_the_private_guard_on() -> None:
    recorder = Recorder()
    async with httpx.AsyncClient() as client:
        delivered = await deliver(_hook("http://[::1"), client, "secret", THREE_TRIES, recorder)
    assert delivered is False
    assert len(recorder.attempts) == 1
    assert recorder.attempts[0].error is not None


async def test_a_url_from_before_url_checks_that_idna_refuses_is_a_recorded_attempt() -> None:
    # Old versions were checked for an http(s) prefix only; getaddrinfo raises UnicodeError
    # (no OSError) for an empty or 64+ character label.
    recorder = Recorder()
    one_try = RetryPolicy(max_attempts=1, base_s=0.01, factor=1.0, cap_s=0.01)
    async with httpx.AsyncClient() as client:
        delivered = await deliver(
            _hook("https://hooks..example.com/call"), client, "secret", one_try, recorder
        )
    assert delivered is False
    assert len(recorder.attempts) == 1
    assert recorder.attempts[0].error


async def test_a_delivery_run_again_after_a_crash_never_reuses_an_attempt_event_id() -> None:
    # Integrators dedupe voice.postcall.events.v1 by event_id: the re-run's success must not
    # look like a copy of the crashed run's failed attempt 1.
    hook = _hook("https://hooks.example.com/call")
    crashed, rerun, recorded = Recorder(), Recorder(), asyncio.Event()

    async def record_then_crash(attempt: WebhookDeliveryAttempted) -> None:
        await crashed(attempt)
        recorded.set()

    slow_retry = RetryPolicy(max_attempts=3, base_s=60.0, factor=1.0, cap_s=60.0)

    def answering(status: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(status)))

    async with answering(503) as failing, answering(200) as working:
        first = asyncio.create_task(
            deliver(hook, failing, "secret", slow_retry, record_then_crash, allow_private=True)
        )
        await recorded.wait()
        first.cancel()  # the worker dies while waiting to retry
        await asyncio.gather(first, return_exceptions=True)
        assert await deliver(hook, working, "secret", slow_retry, rerun, allow_private=True)
    (failed,), (succeeded,) = crashed.attempts, rerun.attempts
    assert (failed.attempt, failed.succeeded, succeeded.attempt, succeeded.succeeded) == (1, False, 1, True)
    assert failed.delivery_id == succeeded.delivery_id
    assert failed.event_id != succeeded.event_id


async def test_the_attempts_of_one_run_have_distinct_event_ids() -> None:
    recorder = Recorder()
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(500)))
    async with client:
        hook = _hook("https://hooks.example.com/call")
        await deliver(hook, client, "s", THREE_TRIES, recorder, allow_private=True)
    assert len({a.event_id for a in recorder.attempts}) == 3
