"""The offline Gemini stand-in: the Live WebSocket and generateContent over TLS, plus a control port.

One TLS port serves both the Live API WebSocket and the REST `generateContent` call, because
google-genai uses a single `base_url` for both; `websockets.serve` cannot read a POST body,
so the port is served by uvicorn (whose WebSocket protocol is built on `websockets`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from streams.standin import wire
from streams.standin.certs import CertPaths, ensure_certificate
from streams.standin.control import control_app
from streams.standin.conversation import Behaviour, Conversation
from streams.standin.rest import API_VERSIONS, rest_routes
from streams.standin.script import Script, primed_turns, script_key
from streams.standin.session import Registry

_log = logging.getLogger("streams.standin")
LIVE_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"


@dataclass(frozen=True, slots=True, kw_only=True)
class StandInSettings:
    """`port`/`control_port` 0 pick free ports; `api_key` None accepts any non-empty key."""

    cert_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    control_port: int = 0
    pace: float = 1.0
    chunk_ms: int = 40
    silence_ms: int = 500
    voice: str = "en-us"
    max_connection_s: float | None = None
    go_away_lead_s: float = 5.0
    api_key: str | None = None
    timings: bool = False
    """Record when audio goes in and out per session (`GET /timings` on the control port)."""
    latency_ms: int = 0
    """A model's own delays, for measuring what they cost a call: `setupComplete` and each
    answer's first audio come this much later. 0 (the default) answers at once."""


class _Link:
    """One open Live WebSocket: the Outbox a Conversation writes to."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.conversation: Conversation | None = None
        self.closed = False
        self._lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(message))

    async def send_raw(self, text: str) -> None:
        async with self._lock:
            if self.closed:
                return
            try:
                await self.websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True

    async def close(self, code: int, reason: str) -> None:
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            _log.info("offline Gemini stand-in closes a connection: %d %s", code, reason)
            with suppress(RuntimeError, OSError):
                await self.websocket.close(code=code, reason=reason[:120])


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handling: whoever embeds the stand-in owns the process's signals."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StandIn:
    """Start with `async with StandIn(settings) as standin:`; see docs/gemini-standin.md."""

    def __init__(self, settings: StandInSettings) -> None:
        self.settings = settings
        self.registry = Registry(timings=settings.timings)
        self.certs: CertPaths = ensure_certificate(settings.cert_dir)
        self._links: set[_Link] = set()
        self._timers: set[asyncio.Task[None]] = set()
        self._servers: list[tuple[_QuietServer, asyncio.Task[None], socket.socket]] = []
        self._behaviour = Behaviour(
            pace=settings.pace,
            chunk_ms=settings.chunk_ms,
            silence_ms=settings.silence_ms,
            voice=settings.voice,
            latency_ms=settings.latency_ms,
        )

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        live = [WebSocketRoute(LIVE_PATH, self._live)]
        api = Starlette(routes=[*live, *rest_routes(self._api_key_ok)])
        await self._serve(api, self.settings.port, tls=True)
        await self._serve(control_app(self), self.settings.control_port, tls=False)
        _log.info("offline Gemini stand-in listening on %s (control %s)", self.base_url, self.control_url)

    async def stop(self) -> None:
        for link in list(self._links):
            await link.close(1001, "offline Gemini stand-in shutting down")
        for timer in list(self._timers):
            timer.cancel()
        for server, task, sock in self._servers:
            server.should_exit = True
            await task
            sock.close()
        self._servers.clear()

    async def __aenter__(self) -> StandIn:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return int(self._servers[0][2].getsockname()[1])

    @property
    def control_port(self) -> int:
        return int(self._servers[1][2].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"https://{self.settings.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.settings.host}:{self.control_port}"

    async def _serve(self, app: Starlette, port: int, *, tls: bool) -> None:
        # IPPROTO_TCP named, not left 0: accepted sockets copy it, and asyncio turns Nagle off
        # (TCP_NODELAY) only on sockets whose proto says TCP. With Nagle on, a chunk sent right
        # after another small message waited for the worker's ACK, which rides on its next
        # 20 ms caller frame: every answer reached the caller one frame late (bench/RESULTS.md).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, port))
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            ws_ping_interval=None,
            ssl_certfile=str(self.certs.cert_file) if tls else None,
            ssl_keyfile=str(self.certs.key_file) if tls else None,
        )
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="gemini-standin")
        while not server.started:
            if task.done():
                sock.close()
                raise RuntimeError("offline Gemini stand-in failed to start") from task.exception()
            await asyncio.sleep(0.01)
        self._servers.append((server, task, sock))

    # --- control (also used by tests directly) ---------------------------------------------------

    def put_script(self, key: str, script: Script) -> None:
        self.registry.scripts[key] = script

    def sessions(self, key: str | None = None) -> list[dict[str, Any]]:
        states = self.registry.sessions.values()
        return [s.view() for s in states if key is None or s.script_key == key]

    def timings(self, key: str | None = None) -> list[dict[str, Any]]:
        """Per session: when it opened and when audio went in and out (empty unless `timings`)."""
        states = self.registry.sessions.values()
        return [
            {"session_id": s.session_id, "script_key": s.script_key, **s.timing.view()}
            for s in states
            if s.timing is not None and (key is None or s.script_key == key)
        ]

    async def go_away(self, key: str | None = None, *, time_left_s: float = 5.0) -> int:
        links = self._matching(key)
        for link in links:
            await self._go_away(link, time_left_s)
        return len(links)

    async def fail(self, key: str | None = None, *, code: int = 1011, reason: str = "") -> int:
        links = self._matching(key)
        for link in links:
            await link.close(code, reason or "offline Gemini stand-in: failure on demand")
        return len(links)

    async def inject(self, key: str | None, raw: str) -> int:
        links = self._matching(key)
        for link in links:
            await link.send_raw(raw)
        return len(links)

    def _matching(self, key: str | None) -> list[_Link]:
        return [
            link
            for link in self._links
            if link.conversation is not None and (key is None or link.conversation.state.script_key == key)
        ]

    async def _go_away(self, link: _Link, time_left_s: float) -> None:
        await link.send(wire.go_away(time_left_s))

        async def close_later() -> None:
            await asyncio.sleep(time_left_s)
            await link.close(1000, "offline Gemini stand-in: connection time limit reached")

        self._keep(asyncio.get_running_loop().create_task(close_later()))

    def _keep(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)
        return task

    # --- the Live WebSocket ----------------------------------------------------------------------

    def _api_key_ok(self, key: str | None) -> bool:
        return bool(key) and (self.settings.api_key is None or key == self.settings.api_key)

    async def _live(self, websocket: WebSocket) -> None:
        accepted_at = time.monotonic()
        await websocket.accept()
        link = _Link(websocket)
        self._links.add(link)
        try:
            # Refusals wait for the setup message: google-genai sends it straight after the
            # handshake, and a close that races that send reaches it as a bare ConnectionClosed
            # instead of the APIError it raises when the close answers its setup.
            first = _decode(await websocket.receive())
            if websocket.path_params.get("version") not in API_VERSIONS:
                await link.close(1008, "unknown API version (offline Gemini stand-in)")
            elif not self._api_key_ok(websocket.headers.get("x-goog-api-key")):
                await link.close(1008, "API key not valid (offline Gemini stand-in)")
            else:
                await self._converse(link, first, dict(websocket.headers), accepted_at)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away, or we closed the socket under the receive loop
        except wire.ClientMessageError as exc:
            await link.close(1007, f"invalid message (offline Gemini stand-in): {exc}")
        finally:
            self._links.discard(link)
            link.closed = True
            if link.conversation is not None:
                link.conversation.state.connections -= 1
                await link.conversation.close()

    async def _converse(
        self, link: _Link, first_message: Any, headers: dict[str, str], accepted_at: float
    ) -> None:
        setup = wire.parse_client_message(first_message)[0]
        if not isinstance(setup, wire.Setup):
            raise wire.ClientMessageError("the first message must be setup")
        if setup.resume_handle:
            state = self.registry.resume(setup.resume_handle)
            if state is None:
                await link.close(1008, "session resumption handle not found (offline Gemini stand-in)")
                return
        else:
            key = script_key(headers, setup.system_instruction)
            state = self.registry.open(key, setup.raw)
            primed = primed_turns(setup.system_instruction)
            if primed is not None:
                state.turn_index, state.greeted = primed, True
        state.connections += 1
        if state.timing is not None:
            state.timing.connected_at.append(accepted_at)
        conversation = Conversation(
            state=state,
            setup=setup,
            script=lambda: self.registry.script_for(state),
            new_handle=self.registry.new_handle,
            out=link,
            behaviour=self._behaviour,
        )
        link.conversation = conversation
        _log.info("offline Gemini stand-in session %s (script %s)", state.session_id, state.script_key)
        await asyncio.sleep(self._behaviour.latency_ms / 1000)
        await link.send(wire.setup_complete(state.session_id))
        await conversation.send_resumption_update()
        timer = self._connection_timer(link)
        try:
            while not link.closed:
                for message in wire.parse_client_message(_decode(await link.websocket.receive())):
                    await conversation.handle(message)
        finally:
            if timer is not None:
                timer.cancel()

    def _connection_timer(self, link: _Link) -> asyncio.Task[None] | None:
        limit = self.settings.max_connection_s
        if limit is None:
            return None
        lead = min(self.settings.go_away_lead_s, limit)

        async def expire() -> None:
            await asyncio.sleep(limit - lead)
            await self._go_away(link, lead)

        return self._keep(asyncio.get_running_loop().create_task(expire()))


def _decode(event: MutableMapping[str, Any]) -> Any:
    if event["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(event.get("code", 1000))
    raw = event.get("text") if event.get("text") is not None else event.get("bytes")
    try:
        return json.loads(raw or b"")
    except ValueError as exc:
        raise wire.ClientMessageError(f"not JSON: {exc}") from exc
