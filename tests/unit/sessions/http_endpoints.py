"""Tiny raw HTTP endpoints on 127.0.0.1 for tool tests: they record requests and misbehave on cue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Request:
    """One request as the endpoint read it."""

    headers: dict[str, str]
    body: bytes


@dataclass
class Endpoint:
    url: str
    requests: list[Request] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader) -> Request:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(headers, body)


def response(status: int, body: bytes, *, location: str | None = None) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if location is not None:
        head += f"Location: {location}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


@asynccontextmanager
async def endpoint(
    answer: Callable[[Request, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[Endpoint]:
    """Serves ``answer`` for each request; the Endpoint lists what arrived."""
    served: Endpoint

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_request(reader)
            served.requests.append(request)
            await answer(request, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client gave up, or the test ended: either way this request is over
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    served = Endpoint(f"http://127.0.0.1:{port}/tool")
    async with server:
        yield served


def replying(status: int, body: bytes) -> Callable[[Request, asyncio.StreamWriter], Awaitable[None]]:
    async def answer(_: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(response(status, body))

    return answer


async def dripping(_: Request, writer: asyncio.StreamWriter) -> None:
    """Headers at once, then one byte of a long body every 50 ms: each read is quick, the whole is not."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.05)


async def silent(_: Request, writer: asyncio.StreamWriter) -> None:
    """Reads the request, never answers."""
    await asyncio.sleep(3600)
