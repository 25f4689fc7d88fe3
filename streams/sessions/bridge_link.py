"""The worker's end of the audio bridge: connect with the call's token, send and receive frames."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from schemas import bridge
from schemas.bridge import BridgeError, BridgeMessage, EdgeToWorker, WorkerToEdge

log = logging.getLogger(__name__)

# Closes after which reconnecting is pointless: the call is over or the token is no good.
FINAL_CLOSE_CODES = frozenset(
    {bridge.CLOSE_BAD_TOKEN, bridge.CLOSE_TOKEN_EXPIRED, bridge.CLOSE_CALL_GONE, bridge.CLOSE_CALL_ENDED}
)


class BridgeClosed(Exception):  # noqa: N818 - an event, named like one
    """The bridge connection ended; ``final`` says the call cannot continue through it."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"bridge closed ({code}): {reason}")
        self.code = code
        self.reason = reason
        self.final = code in FINAL_CLOSE_CODES or code == bridge.CLOSE_REPLACED


class BridgeRefused(BridgeClosed):
    """The edge refused the first connection with a final code: no audio path for this token."""


class BridgeEnd(Protocol):
    """What a call's session needs of its bridge: frames both ways, and closing it."""

    async def receive(self) -> EdgeToWorker: ...

    async def send(self, message: WorkerToEdge) -> None: ...

    async def close(self) -> None: ...


@dataclass
class BridgeLink:
    """One open bridge connection; every bad frame is counted, never raised."""

    connection: ClientConnection
    bad_frames: int = 0

    @classmethod
    async def open(
        cls, url: str, token: str, *, worker_id: str | None = None, timeout_s: float = 5.0
    ) -> BridgeLink:
        """Connect with the call's token, naming this worker (``bridge.WORKER_HEADER``) if given."""
        headers = {bridge.TOKEN_HEADER: token}
        if worker_id:
            headers[bridge.WORKER_HEADER] = worker_id
        connection = await connect(
            url,
            additional_headers=headers,
            open_timeout=timeout_s,
            max_size=2**20,
            compression=None,  # the edge refuses deflate too: PCM barely compresses, every frame pays
        )
        return cls(connection)

    async def receive(self) -> EdgeToWorker:
        """The next valid frame from the edge; raises BridgeClosed when the connection ends."""
        while True:
            try:
                frame = await self.connection.recv()
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                reason = closed.rcvd.reason if closed.rcvd else "connection lost"
                raise BridgeClosed(code, reason) from closed
            message: BridgeMessage | BridgeError = bridge.decode(frame)
            if isinstance(message, BridgeError | WorkerToEdge):  # the edge never sends the latter
                self.bad_frames += 1
                if self.bad_frames == 1 or self.bad_frames % 100 == 0:
                    log.warning("bridge: ignored %d bad frame(s), latest %s", self.bad_frames, message)
                continue
            return message

    async def send(self, message: WorkerToEdge) -> None:
        try:
            await self.connection.send(bridge.encode(message))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            raise BridgeClosed(code, "closed while sending") from closed

    async def close(self) -> None:
        await self.connection.close()


BridgeOpener = Callable[[str, str], Awaitable[BridgeLink]]


def _link_opener(worker_id: str | None) -> BridgeOpener:
    async def open_link(url: str, token: str) -> BridgeLink:
        return await BridgeLink.open(url, token, worker_id=worker_id)

    return open_link


class Bridge:
    """The call's bridge across drops: reconnects with the same token while the edge allows it.

    While the link is down, agent audio is dropped (counted) rather than queued: the caller
    cannot hear it anyway, and the edge buffers the caller's side meanwhile.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        attempts: int = 3,
        backoff_s: float = 0.2,
        worker_id: str | None = None,
        open_link: BridgeOpener | None = None,
    ) -> None:
        """``worker_id`` names this worker to the edge, which then refuses (4409) its reconnection
        to a call another worker took from it (docs/audio-bridge.md)."""
        self._url, self._token = url, token
        self._attempts, self._backoff_s = attempts, backoff_s
        self._open_link = open_link or _link_opener(worker_id)
        self._link: BridgeLink | None = None
        self.reconnects = 0
        self.dropped_sends = 0
        self.bad_frames = 0

    async def connect(self) -> bridge.Hello:
        """Open the link and read the edge's hello; BridgeClosed if the edge refuses."""
        try:
            link = await self._open_link(self._url, self._token)
        except (OSError, TimeoutError, InvalidHandshake) as err:
            raise BridgeClosed(None, f"cannot reach the bridge: {type(err).__name__}: {err}") from err
        try:
            message = await link.receive()
        except BaseException:
            await link.close()  # refused, lost or cancelled before the hello: never leak it
            raise
        if not isinstance(message, bridge.Hello):
            await link.close()
            raise BridgeClosed(None, f"expected hello, got {type(message).__name__}")
        self._link = link
        return message

    async def open(self) -> bridge.Hello:
        """The first connection: an edge that is busy or restarting is retried as a dropped link
        would be. A refused token raises BridgeRefused at once, a worker replaced on the call
        (4409) BridgeClosed, and giving up BridgeLost."""
        try:
            try:
                return await self.connect()
            except BridgeClosed as closed:
                if closed.final:
                    raise
                log.info("bridge %s: first connection failed (%s); retrying", self._url, closed)
                return await self._reconnect(closed)
        except BridgeLost:
            raise
        except BridgeClosed as closed:  # final: _reconnect gives up on the others with BridgeLost
            if closed.code == bridge.CLOSE_REPLACED:
                # Not a refused token: another worker took the call from this one and serves it
                # now. The session ends REPLACED, and the call may come back here later.
                raise
            raise BridgeRefused(closed.code, closed.reason) from closed

    async def receive(self) -> EdgeToWorker:
        """The next frame; after a non-final drop, reconnects (the next frame is a new hello)."""
        while True:
            link = self._link
            if link is None:
                return await self._reconnect(BridgeClosed(None, "not connected"))
            try:
                return await link.receive()
            except BridgeClosed as closed:
                self.bad_frames += link.bad_frames
                self._link = None
                if closed.final:
                    raise
                return await self._reconnect(closed)

    async def send(self, message: WorkerToEdge) -> None:
        link = self._link
        if link is None:
            self.dropped_sends += 1
            return
        try:
            await link.send(message)
        except BridgeClosed as closed:
            if closed.final:
                raise
            self.dropped_sends += 1  # receive() notices the drop and reconnects

    async def send_when_open(self, message: WorkerToEdge, *, timeout_s: float = 10.0) -> bool:
        """Send a directive that must not be lost (a hang-up, a transfer): once the link is up,
        again after a drop; False if it never went out within ``timeout_s``."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while loop.time() < until:
            link = self._link
            if link is not None:
                try:
                    await link.send(message)
                    return True
                except BridgeClosed as closed:
                    if closed.final:
                        raise
            await asyncio.sleep(0.05)  # receive() is reconnecting
        self.dropped_sends += 1
        return False

    async def close(self) -> None:
        if self._link is not None:
            await self._link.close()
            self._link = None

    async def _reconnect(self, cause: BridgeClosed) -> bridge.Hello:
        last = cause
        for attempt in range(self._attempts):
            await asyncio.sleep(self._backoff_s * 2**attempt)
            try:
                hello = await self.connect()
            except BridgeClosed as closed:
                if closed.final:
                    raise
                last = closed
                continue
            self.reconnects += 1
            log.info("bridge %s: reconnected after %s", self._url, cause)
            return hello
        raise BridgeLost(last.code, f"gave up reconnecting after {self._attempts} attempts: {last}")


BridgeFactory = Callable[[str, str], Bridge]
"""Makes a call's bridge from its address and token (tests pass fakes)."""


class BridgeLost(BridgeClosed):
    """The bridge dropped and could not be reconnected: the call cannot go on through it."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(code, reason)
        self.final = True
