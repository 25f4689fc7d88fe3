"""A call's bridge before its stream has started: agent audio is queued, the caller's side waits."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from schemas import bridge
from schemas.bridge import EdgeToWorker, WorkerToEdge
from streams.sessions.bridge_link import Bridge, BridgeFactory

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUED_AUDIO_S = 30.0
"""Agent audio kept while no stream is known: far more than a greeting, bounded all the same."""


class PendingBridge:
    """Stands in for the call's ``Bridge`` while a pre-warmed session waits for the stream.

    Until ``attach`` gives the bridge's address and token, whatever the session sends (the
    greeting's audio, its mark) is queued, and ``receive`` waits. On ``attach`` the real bridge
    is opened at once, the queue is sent in order, and from then on every call goes straight to
    the bridge. A refused token (BridgeRefused) or an edge never reached (BridgeLost) is raised
    from ``receive``, where the session's uplink meets it, as it would meet a dropped bridge.
    """

    def __init__(
        self,
        call_id: str,
        *,
        bridge_factory: BridgeFactory = Bridge,
        max_queued_audio_s: float = DEFAULT_MAX_QUEUED_AUDIO_S,
    ) -> None:
        self._call_id = call_id
        self._bridge_factory = bridge_factory
        self._max_queued_bytes = int(max_queued_audio_s * bridge.AGENT_RATE * 2)
        self._queue: deque[WorkerToEdge] = deque()
        self._queued_bytes = 0
        self._bridge: Bridge | None = None
        self._opening: asyncio.Task[Bridge] | None = None
        self._attached = asyncio.Event()
        self._ignored: set[str] = set()
        self.token: str | None = None
        """The token of the stream this bridge was attached to; None until then."""
        self.dropped_audio_bytes = 0
        """Agent audio beyond the queue's bound, dropped while no stream was known."""

    @property
    def attached(self) -> bool:
        return self.token is not None

    @property
    def opened(self) -> bool:
        """The bridge is open and what was queued has been sent: the caller can hear it."""
        return self._bridge is not None

    def attach(self, url: str, token: str) -> None:
        """The call's stream has started: open its bridge now and send what was queued.

        A second attach is ignored: the session talks through the first stream's bridge to the
        end, and a later stream of the call gets a session of its own.
        """
        if self.token is not None:
            if token != self.token and token not in self._ignored:
                self._ignored.add(token)
                log.warning("call %s: pre-warmed session already attached; new stream ignored", self._call_id)
            return
        self.token = token
        self._opening = asyncio.create_task(self._open(url, token), name=f"bridge-open-{self._call_id}")
        self._attached.set()

    async def receive(self) -> EdgeToWorker:
        bridge_ = self._bridge or await self._opened()
        return await bridge_.receive()

    async def send(self, message: WorkerToEdge) -> None:
        bridge_ = self._bridge
        if bridge_ is not None:
            await bridge_.send(message)
            return
        if isinstance(message, bridge.AgentAudio):
            if self._queued_bytes + len(message.pcm) > self._max_queued_bytes:
                if not self.dropped_audio_bytes:
                    log.warning("call %s: no stream yet and agent audio queue full; dropping", self._call_id)
                self.dropped_audio_bytes += len(message.pcm)
                return
            self._queued_bytes += len(message.pcm)
        self._queue.append(message)

    async def send_when_open(self, message: WorkerToEdge, *, timeout_s: float = 10.0) -> bool:
        """As ``Bridge.send_when_open``; before the stream, the directive is queued like the rest."""
        bridge_ = self._bridge
        if bridge_ is not None:
            return await bridge_.send_when_open(message, timeout_s=timeout_s)
        await self.send(message)
        return True

    async def close(self) -> None:
        opening = self._opening
        if opening is not None and not opening.done():
            opening.cancel()
        if opening is not None:
            # A failed opening was raised to the receiver (or nobody was left to receive it).
            await asyncio.gather(opening, return_exceptions=True)
        if self._bridge is not None:
            await self._bridge.close()
            self._bridge = None

    async def _opened(self) -> Bridge:
        await self._attached.wait()
        assert self._opening is not None
        # Shielded: a receiver cancelled while the bridge opens (a Live reconnect restarts the
        # pump) must not cancel the opening under the next receiver.
        return await asyncio.shield(self._opening)

    async def _open(self, url: str, token: str) -> Bridge:
        bridge_ = self._bridge_factory(url, token)
        queued = len(self._queue)
        try:
            await bridge_.open()
            # Sends during this loop append to the queue and are sent by it, in order; the
            # bridge takes over only once the queue is empty, with no await in between.
            while self._queue:
                message = self._queue.popleft()
                if isinstance(message, bridge.AgentAudio):
                    self._queued_bytes -= len(message.pcm)
                await bridge_.send(message)
        except BaseException:
            await bridge_.close()  # cancelled (the session ended) or closed for good mid-flush
            raise
        self._bridge = bridge_
        if queued:
            log.info(
                "call %s: bridge open; sent %d message(s) queued before the stream", self._call_id, queued
            )
        return bridge_
