"""Caller audio towards the model: each frame sent at once, coalesced when the session falls behind."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import NoReturn

log = logging.getLogger(__name__)

SendAudio = Callable[[bytes], Awaitable[None]]


class CallerAudioPipe:
    """The bridge reader pushes 20 ms frames; one task sends them, joining whatever piled up.

    While the worker keeps up, every frame goes out alone, as soon as it arrives. When its loop
    falls behind (a burst of model audio, a busy moment on a shared core), the frames that
    arrived meanwhile go out as one realtime input: the model hears the same audio in the same
    order, and the fixed cost of a send (the SDK's validation and JSON, one WebSocket frame, one
    TLS record: about 65 µs, more than the audio's own bytes cost) is paid once per batch
    instead of once per frame. A worker that falls behind therefore catches up instead of
    falling further behind. Latency is never traded for it: nothing waits for a batch to fill.

    Bounded: if the session stops taking audio at all (a stalled connection), at most
    ``max_pending_bytes`` wait here; older audio is dropped and counted, never silently.
    """

    def __init__(
        self,
        *,
        max_batch_bytes: int = 5_120,
        max_pending_bytes: int = 160_000,
    ) -> None:
        if max_batch_bytes <= 0 or max_pending_bytes < max_batch_bytes:
            raise ValueError("need 0 < max_batch_bytes <= max_pending_bytes")
        self._max_batch = max_batch_bytes
        self._max_pending = max_pending_bytes
        self._frames: deque[bytes] = deque()
        self._pending_bytes = 0
        self._ready = asyncio.Event()
        self.frames_in = 0
        self.sends = 0
        self.dropped_bytes = 0
        self.dropped_frames = 0

    @property
    def pending_bytes(self) -> int:
        """Audio pushed and not yet handed to the session."""
        return self._pending_bytes

    def push(self, pcm: bytes) -> None:
        """Queue one frame (never blocks); the oldest audio goes if the bound is exceeded."""
        if not pcm:
            return
        self.frames_in += 1
        self._frames.append(pcm)
        self._pending_bytes += len(pcm)
        while self._pending_bytes > self._max_pending and len(self._frames) > 1:  # keep the newest
            dropped = self._frames.popleft()
            self._pending_bytes -= len(dropped)
            self.dropped_bytes += len(dropped)
            self.dropped_frames += 1
            if self.dropped_frames % 50 == 1:  # the first drop, then once a second of 20 ms frames
                log.warning(
                    "caller audio: the session is not taking audio; %d frame(s) dropped so far",
                    self.dropped_frames,
                )
        self._ready.set()

    def clear(self) -> None:
        """Forget the queued audio (a machine answered: its greeting must not reach the model)."""
        self._frames.clear()
        self._pending_bytes = 0

    def take_batch(self) -> bytes:
        """The oldest queued frames, joined, up to the batch size (at least one whole frame)."""
        frames = self._frames
        first = frames.popleft()
        size = len(first)
        if not frames or size + len(frames[0]) > self._max_batch:
            self._pending_bytes -= size
            return first
        batch = [first]
        while frames and size + len(frames[0]) <= self._max_batch:
            frame = frames.popleft()
            batch.append(frame)
            size += len(frame)
        self._pending_bytes -= size
        return b"".join(batch)

    async def run(self, send: SendAudio) -> NoReturn:
        """Send through ``send`` until cancelled; a failed send raises (its batch is lost).

        Audio still queued when a run ends goes out on the next run: one pipe outlives the
        Live connections of a call, so a reconnect loses at most the batch that was in flight.
        """
        while True:
            while not self._frames:
                self._ready.clear()
                await self._ready.wait()
            await send(self.take_batch())
            self.sends += 1
