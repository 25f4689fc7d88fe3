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


def to_frames(samples8k: npt.NDArray[np.int16]) -> list[bytes]:
    """μ-law frames of 20 ms, the last one padded with silence."""
    encoded = mulaw.encode(samples8k)
    encoded += SILENCE[: (-len(encoded)) % FRAME_BYTES]
    return [encoded[i : i + FRAME_BYTES] for i in range(0, len(encoded), FRAME_BYTES)]


@dataclass
class Heard:
    """What the caller sent and heard, frame by frame (8 kHz μ-law), plus marks and clears."""

    sent: list[bytes] = field(default_factory=list)
    heard: list[bytes] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    clears: int = 0

    def stereo_pcm(self) -> npt.NDArray[np.int16]:
        """Left: the caller; right: what the caller heard; aligned by arrival, 8 kHz."""
        length = max(len(self.sent), len(self.heard))
        left = b"".join(self.sent) + SILENCE * (length - len(self.sent))
        right = b"".join(self.heard) + SILENCE * (length - len(self.heard))
        return np.stack([mulaw.decode(left), mulaw.decode(right)], axis=1).astype(np.int16)


class SimulatedCaller:
    """Opens /twilio/media like Twilio does, sends queued speech (else silence) in real time."""

    def __init__(self, media_url: str, auth_token: str, *, stream_sid: str, call_sid: str) -> None:
        self._url = media_url
        self._signature = RequestValidator(auth_token).compute_signature(media_url, {})
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.audio = Heard()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._seq = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    async def open(self, parameters: dict[str, str]) -> None:
        self._ws = await connect(self._url, additional_headers={"X-Twilio-Signature": self._signature})
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "start": {
                    "streamSid": self.stream_sid,
                    "accountSid": "AC" + "0" * 32,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )
        self._tasks = [asyncio.create_task(self._pace()), asyncio.create_task(self._read())]

    def say(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._queue.put_nowait(frame)

    async def said(self) -> None:
        """Return once everything queued has been sent."""
        while not self._queue.empty() and not self.closed.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def hang_up(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._send(
                    {"event": "stop", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                     "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid}}
                )  # fmt: skip
            await self._ws.close()
        self.closed.set()

    def _next(self) -> str:
        self._seq += 1
        return str(self._seq)

    async def _send(self, body: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps(body))

    async def _pace(self) -> None:
        next_at, timestamp = time.monotonic(), 0
        with contextlib.suppress(ConnectionClosed):
            while True:
                next_at += 0.02
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                frame = SILENCE if self._queue.empty() else self._queue.get_nowait()
                self.audio.sent.append(frame)
                media = {"track": "inbound", "chunk": str(len(self.audio.sent)), "timestamp": str(timestamp)}
                media["payload"] = base64.b64encode(frame).decode()
                await self._send(
                    {
                        "event": "media",
                        "sequenceNumber": self._next(),
                        "streamSid": self.stream_sid,
                        "media": media,
                    }
                )
                timestamp += 20

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                body = json.loads(message)
                event = body.get("event")
                if event == "media":
                    self.audio.heard.append(base64.b64decode(body["media"]["payload"]))
                elif event == "mark":
                    name = body["mark"]["name"]
                    self.audio.marks.append(name)
                    # Frames arrive at play-out pace, so the mark has been "played" right now.
                    await self._send(
                        {
                            "event": "mark",
                            "sequenceNumber": self._next(),
                            "streamSid": self.stream_sid,
                            "mark": {"name": name},
                        }
                    )
                elif event == "clear":
                    self.audio.clears += 1
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
