"""Test doubles that speak the real wire protocols: a Twilio Media Streams client and a bridge worker."""

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
from edge.audio.speech import synthesize, to_rate
from schemas import bridge

SILENCE_FRAME = bytes([0xFF]) * 160


def speech(text: str, rate: int) -> npt.NDArray[np.int16]:
    samples, source_rate = synthesize(text)
    return to_rate(samples, source_rate, rate)


def mulaw_frames(samples8k: npt.NDArray[np.int16]) -> list[bytes]:
    encoded = mulaw.encode(samples8k)
    encoded += SILENCE_FRAME[: (-len(encoded)) % 160]
    return [encoded[i : i + 160] for i in range(0, len(encoded), 160)]


@dataclass
class Received:
    """Everything the simulated Twilio side got from the edge, with arrival times."""

    media: list[tuple[float, bytes]] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)


class TwilioSim:
    """Speaks Twilio Media Streams: connected, start, 20 ms media at real-time pace, marks, stop."""

    def __init__(self, url: str, signed_url: str, auth_token: str, *, stream_sid: str, call_sid: str) -> None:
        self.url = url
        self.signature = RequestValidator(auth_token).compute_signature(signed_url, {})
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.ws: ClientConnection | None = None
        self.received = Received()
        self.outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self.seq = 0
        self.timestamp_ms = 0
        self.chunk = 0
        self.echo_marks = True
        self.paused = False
        self._tasks: list[asyncio.Task[None]] = []

    def next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def open(self, params: dict[str, str]) -> None:
        self.ws = await connect(self.url, additional_headers={"X-Twilio-Signature": self.signature})
        await self.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send_json(self.start_frame(params))
        self._tasks = [asyncio.create_task(self._pace()), asyncio.create_task(self._read())]

    def start_frame(self, params: dict[str, str], stream_sid: str | None = None) -> dict[str, Any]:
        sid = stream_sid or self.stream_sid
        return {
            "event": "start",
            "sequenceNumber": self.next_seq(),
            "streamSid": sid,
            "start": {
                "streamSid": sid,
                "accountSid": "AC" + "0" * 32,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": params,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }

    def media_frame(self, payload: bytes) -> dict[str, Any]:
        self.chunk += 1
        frame = {
            "event": "media",
            "sequenceNumber": self.next_seq(),
            "streamSid": self.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(self.chunk),
                "timestamp": str(self.timestamp_ms),
                "payload": base64.b64encode(payload).decode(),
            },
        }
        self.timestamp_ms += 20
        return frame

    async def send_json(self, body: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(body))

    async def send_raw(self, data: str | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(data)

    def say(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.outgoing.put_nowait(frame)

    async def said(self) -> None:
        while not self.outgoing.empty():  # noqa: ASYNC110 - polls a queue another task drains
            await asyncio.sleep(0.02)

    async def _pace(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._pace_frames()

    async def _pace_frames(self) -> None:
        next_at = time.monotonic()
        while True:
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if self.paused:
                continue
            try:
                payload = self.outgoing.get_nowait()
            except asyncio.QueueEmpty:
                payload = SILENCE_FRAME
            await self.send_json(self.media_frame(payload))

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._read_frames()

    async def _read_frames(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            now = time.monotonic()
            body = json.loads(message)
            if body["event"] == "media":
                self.received.media.append((now, base64.b64decode(body["media"]["payload"])))
            elif body["event"] == "mark":
                name = body["mark"]["name"]
                self.received.marks.append((now, name))
                if self.echo_marks:  # frames arrive at play-out pace, so the mark is reached now
                    await self.send_json(
                        {
                            "event": "mark",
                            "sequenceNumber": self.next_seq(),
                            "streamSid": self.stream_sid,
                            "mark": {"name": name},
                        }
                    )
            elif body["event"] == "clear":
                self.received.clears.append(now)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.send_json(
                    {
                        "event": "stop",
                        "sequenceNumber": self.next_seq(),
                        "streamSid": self.stream_sid,
                        "stop": {"callSid": self.call_sid},
                    }
                )
            await self.ws.close()


class BridgeWorker:
    """A session worker's side of the audio bridge."""

    def __init__(self) -> None:
        self.ws: ClientConnection | None = None
        self.hello: bridge.Hello | None = None
        self.audio: list[bridge.CallerAudio] = []
        self.notices: list[bridge.BridgeMessage] = []
        self._task: asyncio.Task[None] | None = None

    async def open(self, url: str, token: str) -> None:
        self.ws = await connect(url, additional_headers={bridge.TOKEN_HEADER: token}, max_size=None)
        first = bridge.decode(await self.ws.recv())
        assert isinstance(first, bridge.Hello), first
        self.hello = first
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for frame in self.ws:
                message = bridge.decode(frame)
                if isinstance(message, bridge.CallerAudio):
                    self.audio.append(message)
                else:
                    self.notices.append(message)

    async def play(self, pcm24: npt.NDArray[np.int16], *, chunk_ms: int = 100) -> None:
        assert self.ws is not None
        step = 24 * chunk_ms
        for seq, start in enumerate(range(0, len(pcm24), step)):
            await self.ws.send(bridge.encode_agent_audio(seq, pcm24[start : start + step].tobytes()))

    async def directive(self, message: bridge.WorkerToEdge) -> None:
        assert self.ws is not None
        await self.ws.send(bridge.encode(message))

    def caller_pcm(self) -> npt.NDArray[np.int16]:
        return np.frombuffer(b"".join(frame.pcm for frame in self.audio), dtype="<i2")

    async def closed(self, within: float = 5.0) -> int | None:
        assert self.ws is not None
        assert self._task is not None
        await asyncio.wait_for(self._task, within)
        return self.ws.close_code


async def refused_code(url: str, token: str) -> int | None:
    """Connect to the bridge with ``token`` and report the close code the edge answered with."""
    async with connect(url, additional_headers={bridge.TOKEN_HEADER: token}) as ws:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.recv(), 5.0)
        return ws.close_code
