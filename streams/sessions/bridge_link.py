"""The worker's end of the audio bridge: connect with the call's token, send and receive frames."""

from __future__ import annotations

from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from schemas import bridge
from schemas.bridge import BridgeError, BridgeMessage, EdgeToWorker, WorkerToEdge

# Closes after which reconnecting is pointless: the call is over or the token is no good.
FINAL_CLOSE_CODES = frozenset(
    {bridge.CLOSE_BAD_TOKEN, bridge.CLOSE_TOKEN_EXPIRED, bridge.CLOSE_CALL_GONE, bridge.CLOSE_CALL_ENDED}
)


class BridgeClosed(Exception):  # noqa: N818 - an event, named like one
    """The bridge connection ended; ``final`` says the call cannot continue through it."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"bridge closed ({code}): {reason}")
        self.code = code
        self.final = code in FINAL_CLOSE_CODES or code == bridge.CLOSE_REPLACED


@dataclass
class BridgeLink:
    """One open bridge connection; every bad frame is counted, never raised."""

    connection: ClientConnection
    bad_frames: int = 0

    @classmethod
    async def open(cls, url: str, token: str, *, timeout_s: float = 5.0) -> BridgeLink:
        connection = await connect(
            url,
            additional_headers={bridge.TOKEN_HEADER: token},
            open_timeout=timeout_s,
            max_size=2**20,
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
            if isinstance(message, BridgeError):
                self.bad_frames += 1
                continue
            if isinstance(message, WorkerToEdge):
                self.bad_frames += 1  # the edge never sends these
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
