"""A simulated Twilio caller: the real Media Streams protocol, signed, paced at 20 ms frames."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from edge.audio import mulaw

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
SILENCE = bytes([0xFF]) * FRAME_BYTES
ACCOUNT_SID = "AC" + "0" * 32


def to_frames(samples8k: npt.NDArray[np.int16]) -> list[bytes]:
    """μ-law frames of 20 ms, the last one padded with silence."""
    encoded = mulaw.encode(samples8k)
    encoded += SILENCE[: (-len(encoded)) % FRAME_BYTES]
    return [encoded[i : i + FRAME_BYTES] for i in range(0, len(encoded), FRAME_BYTES)]


@dataclass
class Heard:
    """What the caller sent and heard, frame by frame (8 kHz μ-law), plus marks and clears.

    ``heard_at`` and ``cleared_at`` are arrival times on the monotonic clock, one per heard frame
    and one per ``clear``; ``sent_at`` is when each sent frame was handed to the socket.
    """

    sent: list[bytes] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    heard: list[bytes] = field(default_factory=list)
    heard_at: list[float] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    cleared_at: list[float] = field(default_factory=list)

    @property
    def clears(self) -> int:
        return len(self.cleared_at)

    def stereo_pcm(self) -> npt.NDArray[np.int16]:
        """Left: the caller; right: what the caller heard, each frame when it arrived; 8 kHz.

        The caller sends a frame every 20 ms from its first, so that is the clock: a heard
        frame goes in the slot of its arrival time, the pauses between answers stay pauses.
        """
        origin = self.sent_at[0] if self.sent_at else (self.heard_at[0] if self.heard_at else 0.0)
        slots = heard_slots(self.heard_at, origin)
        length = max(len(self.sent), slots[-1] + 1 if slots else 0)
        right = [SILENCE] * length
        for slot, frame in zip(slots, self.heard, strict=True):
            right[slot] = frame
        left = b"".join(self.sent) + SILENCE * (length - len(self.sent))
        return np.stack([mulaw.decode(left), mulaw.decode(b"".join(right))], axis=1).astype(np.int16)


def heard_slots(arrivals: list[float], origin: float, frame_s: float = 0.02) -> list[int]:
    """The 20 ms slot of each heard frame: where it arrived, but never overlapping the one before.

    Frames of one answer come paced but jittered: within two slots of the previous frame's
    next slot, a frame follows it directly (no click of silence); later, it starts anew there.
    """
    slots: list[int] = []
    for arrival in arrivals:
        due = max(0, round((arrival - origin) / frame_s))
        following = slots[-1] + 1 if slots else 0
        slots.append(following if due <= following + 2 else due)
    return slots


class SimulatedCaller:
    """Opens /twilio/media like Twilio does, sends queued speech (else silence) in real time.

    Tests misbehave through the same object: ``paused`` stops the paced frames (a gap, or a
    client gone quiet), ``echo_marks`` off leaves marks unplayed, and ``send`` / ``send_raw``
    with the frame builders put any frame, well-formed or not, on the socket.
    """

    def __init__(self, media_url: str, auth_token: str, *, stream_sid: str, call_sid: str) -> None:
        self._url = media_url
        self.signature = RequestValidator(auth_token).compute_signature(media_url, {})
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.audio = Heard()
        self.paused = False
        self.echo_marks = True
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._seq = 0
        self._chunk = 0
        self._timestamp_ms = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    async def open(self, parameters: dict[str, str]) -> None:
        self._ws = await connect(self._url, additional_headers={"X-Twilio-Signature": self.signature})
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send(self.start_frame(parameters))
        self._tasks = [asyncio.create_task(self._pace()), asyncio.create_task(self._read())]

    def say(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._queue.put_nowait(frame)

    async def said(self) -> None:
        """Return once everything queued has been sent."""
        while not self._queue.empty() and not self.closed.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def press(self, digit: str) -> None:
        await self.send(self._framed("dtmf", {"track": "inbound_track", "digit": digit}))

    async def hang_up(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self.send(self._framed("stop", {"accountSid": ACCOUNT_SID, "callSid": self.call_sid}))
            await self._ws.close()
        self.closed.set()

    def start_frame(self, parameters: dict[str, str], *, stream_sid: str | None = None) -> dict[str, Any]:
        """The ``start`` message; another ``stream_sid`` makes a second, unwelcome start."""
        sid = stream_sid or self.stream_sid
        start = {
            "streamSid": sid,
            "accountSid": ACCOUNT_SID,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        return self._framed("start", start) | {"streamSid": sid}

    def media_frame(self, payload: bytes) -> dict[str, Any]:
        """The next inbound ``media`` message: takes the next sequence number, chunk and 20 ms."""
        self._chunk += 1
        media = {"track": "inbound", "chunk": str(self._chunk), "timestamp": str(self._timestamp_ms)}
        self._timestamp_ms += 20
        return self._framed("media", media | {"payload": base64.b64encode(payload).decode()})

    async def send(self, body: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(body))

    async def send_raw(self, data: str | bytes) -> None:
        assert self._ws is not None
        await self._ws.send(data)

    def _framed(self, event: str, body: dict[str, Any]) -> dict[str, Any]:
        self._seq += 1
        return {"event": event, "sequenceNumber": str(self._seq), "streamSid": self.stream_sid, event: body}

    async def _pace(self) -> None:
        next_at = time.monotonic()
        with contextlib.suppress(ConnectionClosed):
            while True:
                next_at += 0.02
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                if self.paused:
                    continue
                frame = SILENCE if self._queue.empty() else self._queue.get_nowait()
                message = json.dumps(self.media_frame(frame))
                self.audio.sent.append(frame)
                self.audio.sent_at.append(time.monotonic())
                await self.send_raw(message)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                await self._on_message(json.loads(message), time.monotonic())
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def _on_message(self, body: dict[str, Any], now: float) -> None:
        event = body.get("event")
        if event == "media":
            self.audio.heard.append(base64.b64decode(body["media"]["payload"]))
            self.audio.heard_at.append(now)
        elif event == "mark":
            name = body["mark"]["name"]
            self.audio.marks.append(name)
            if self.echo_marks:  # frames arrive at play-out pace, so the mark has been "played" now
                await self.send(self._framed("mark", {"name": name}))
        elif event == "clear":
            self.audio.cleared_at.append(now)
