"""``/twilio/media`` straight off the socket: uvicorn's WebSocket protocol slot, without ASGI.

uvicorn hands every upgraded connection to the protocol class in ``Config.ws``. This one does
the WebSocket handshake and framing with the ``websockets`` sans-I/O ``ServerProtocol`` (as
uvicorn's own ``websockets-sansio`` implementation does) but calls ``MediaLoop.on_message``
right from ``data_received``: no ASGI message dict, queue, pause/resume of reading and task
switch per frame, and sends to Twilio are a direct transport write. Measured in
``bench/bench_edge.py`` (see bench/RESULTS.md), this is the larger half of the node's per-frame
cost at 200 calls. Behaviour is the FastAPI route's: 403 on a bad signature or a full node,
then the same ``MediaLoop``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any, ClassVar, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from edge.media_socket import MediaLoop
from edge.node import EdgeNode
from edge.signature import SIGNATURE_HEADER, SignatureChecker
from edge.twiml import MEDIA_PATH
from edge.wsframe import TEXT, server_frame

log = logging.getLogger(__name__)
_CLOSE_TIMEOUT_S = 10.0
"""How long a closing socket may take before it is dropped: ``transport.close()`` alone waits
for the write buffer to drain, for ever on a client that stopped reading (a zero TCP window)."""
_background: set[asyncio.Task[None]] = set()


def _spawn(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


class MediaStreamProtocol(asyncio.Protocol):
    """One upgraded connection; use ``bound(node, checker)`` as uvicorn's ``ws`` class."""

    node: ClassVar[EdgeNode]
    checker: ClassVar[SignatureChecker]

    @classmethod
    def bound(cls, node: EdgeNode, checker: SignatureChecker) -> type[MediaStreamProtocol]:
        return type("EdgeMediaStreamProtocol", (cls,), {"node": node, "checker": checker})

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.connections: set[Any] = server_state.connections
        self.loop = _loop or asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        # No extensions: permessage-deflate would cost zlib on every frame, for base64 audio.
        self.conn = ServerProtocol(max_size=config.ws_max_size, logger=log)
        self.media: MediaLoop | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self._ping_interval: float | None = config.ws_ping_interval
        self._last_ping = self.loop.time()
        self._close_timer: asyncio.TimerHandle | None = None
        self._fragments: list[bytes] = []
        self._fragment_text = False

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        for event in conn.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._handshake(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.writable.set()  # unblock a send waiting for the buffer to drain: it will fail
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        media = self.media
        if media is not None:
            self.node.watchdog.discard(self)
            if not media.finished:
                _spawn(media.finish(media.expired or "socket_closed"))

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def shutdown(self) -> None:
        """uvicorn is exiting: close with 1012 (service restart)."""
        if self.conn.state is State.OPEN:
            self.conn.send_close(1012)
            self._flush()
        self._close_transport()

    # --- what LiveCall and MediaLoop use ----------------------------------------------------

    async def send_text(self, data: str) -> None:
        if not self.writable.is_set():
            await self.writable.wait()  # a full socket: the watchdog times a stuck client
        if self.conn.state is not State.OPEN:
            raise ConnectionError("the Twilio socket is closed")
        self._flush()  # whatever the protocol queued goes first
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(server_frame(TEXT, data.encode()))  # no extensions negotiated

    def try_send_text(self, data: str) -> bool:
        """Send at once if the socket takes it (the playback clock's path); False sends nothing."""
        transport = self.transport
        if (
            not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or transport is None
            or transport.is_closing()
        ):
            return False  # send_text waits for the socket, or says it is gone
        self._flush()
        transport.write(server_frame(TEXT, data.encode()))
        return True

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self.conn.state is not State.OPEN:
            return
        self.conn.send_close(code, reason or "")
        self._flush()
        self._arm_abort()  # the client should answer the close; one that does not is dropped

    def _close_transport(self) -> None:
        """Close TCP, and drop it if its buffered bytes do not go out by the close deadline."""
        if self.transport is not None:
            self.transport.close()
            self._arm_abort()

    def _arm_abort(self) -> None:
        if self._close_timer is None and self.transport is not None:
            self._close_timer = self.loop.call_later(_CLOSE_TIMEOUT_S, self._abort)

    def _abort(self) -> None:
        """The close deadline passed: drop the connection. ``transport.close()`` would wait for
        the write buffer to drain, which a client that stopped reading never lets happen, and
        ``connection_lost`` (which finishes the call) would never come."""
        self._close_timer = None
        if self.transport is not None:
            self.node.metrics.incr("streams.aborted")
            self.transport.abort()

    def check_deadlines(self, now: float) -> None:
        """Watchdog: the keepalive ping every ``ws_ping_interval`` seconds."""
        interval = self._ping_interval
        if interval and self.conn.state is State.OPEN and now - self._last_ping >= interval:
            self._last_ping = now
            self.conn.send_ping(os.urandom(4))
            self._flush()

    # --- internals --------------------------------------------------------------------------

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for chunk in self.conn.data_to_send():
            if chunk:
                transport.write(chunk)
            else:  # end of the close handshake: the server closes TCP
                self._close_transport()
                return

    def _handshake(self, request: Request) -> None:
        conn = self.conn
        node = self.node
        refusal: HTTPStatus | None = None
        if request.path.partition("?")[0] != MEDIA_PATH:
            refusal = HTTPStatus.NOT_FOUND
        elif not self.checker.check_media_upgrade(request.headers.get(SIGNATURE_HEADER)):
            node.metrics.security_event("bad_signature", "/twilio/media upgrade")
            refusal = HTTPStatus.FORBIDDEN
        elif not node.admit_stream():
            node.metrics.incr("streams.refused")
            refusal = HTTPStatus.FORBIDDEN
        response = conn.reject(refusal, "") if refusal is not None else conn.accept(request)
        conn.send_response(response)
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            self._flush()
            self._close_transport()
            return
        node.metrics.incr("streams.accepted")
        self.media = MediaLoop(self, node)
        if self._ping_interval:
            node.watchdog.add(self)

    def _on_frame(self, frame: Frame) -> None:
        media = self.media
        if media is None or media.finished:
            return
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:  # Twilio never fragments, but a client may
                self._fragments = [bytes(frame.data)]
                self._fragment_text = opcode is Opcode.TEXT
                return
            message: str | bytes = bytes(frame.data)
            text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT and self._fragments:
            self._fragments.append(bytes(frame.data))
            if not frame.fin:
                return
            message, self._fragments = b"".join(self._fragments), []
            text = self._fragment_text
        else:
            return  # ping, pong and close are answered by the sans-I/O protocol
        if text:
            assert isinstance(message, bytes)
            try:
                message = message.decode()
            except UnicodeDecodeError as exc:
                # The sans-I/O protocol does not check text frames' UTF-8: the frame is ours to
                # refuse (as bad input, like any other unusable frame; the call goes on).
                media.refuse_undecodable(str(exc)[:120])
                return
        stop = media.on_message(message)
        if stop is not None:
            _spawn(self._stop(media, stop))

    async def _stop(self, media: MediaLoop, reason: str) -> None:
        """Twilio's ``stop``: finish the call, then close the socket as the ASGI route does."""
        await media.finish(reason)
        await self.close(1000)
