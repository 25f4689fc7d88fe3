"""Test helpers: caller speech for the stand-in and a receiver that collects a Live session's messages."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from google import genai
from google.genai import errors, types

from streams.standin.voice import ESPEAK_RATE, resample, synthesize

CHUNK = 640  # 20 ms of 16 kHz PCM16


@functools.lru_cache(maxsize=16)
def caller_speech(text: str, silence_ms: int = 700) -> bytes:
    """Synthesised caller speech at 16 kHz followed by silence (the stand-in's VAD ends the turn)."""
    speech = resample(synthesize(text), ESPEAK_RATE, 16000)
    tail = np.zeros(16 * silence_ms, dtype=np.int16)
    return np.concatenate([np.zeros(1600, dtype=np.int16), speech, tail]).astype("<i2").tobytes()


async def send_audio(session: Any, pcm: bytes, *, paced: bool = False) -> None:
    for start in range(0, len(pcm), CHUNK):
        blob = types.Blob(data=pcm[start : start + CHUNK], mime_type="audio/pcm;rate=16000")
        await session.send_realtime_input(audio=blob)
        await asyncio.sleep(0.02 if paced else 0)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


class Receiver:
    """Reads every message of a session (across turns) into a queue; an APIError ends it."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.queue: asyncio.Queue[types.LiveServerMessage] = asyncio.Queue()
        self.error: errors.APIError | None = None
        self.done = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                async for message in self.session.receive():
                    await self.queue.put(message)
        except errors.APIError as exc:
            self.error = exc
        finally:
            self.done.set()

    async def next(self, within: float = 10.0) -> types.LiveServerMessage:
        return await asyncio.wait_for(self.queue.get(), within)

    async def until(self, predicate: Any, within: float = 10.0) -> list[types.LiveServerMessage]:
        """Messages up to and including the first one matching `predicate`."""
        seen: list[types.LiveServerMessage] = []
        async with asyncio.timeout(within):
            while True:
                message = await self.queue.get()
                seen.append(message)
                if predicate(message):
                    return seen

    async def turn(self, within: float = 10.0) -> list[types.LiveServerMessage]:
        return await self.until(turn_complete, within)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def turn_complete(message: types.LiveServerMessage) -> bool:
    return bool(message.server_content and message.server_content.turn_complete)


def input_text(messages: list[types.LiveServerMessage]) -> str:
    return "".join(
        m.server_content.input_transcription.text or ""
        for m in messages
        if m.server_content and m.server_content.input_transcription
    )


def output_text(messages: list[types.LiveServerMessage]) -> str:
    return "".join(
        m.server_content.output_transcription.text or ""
        for m in messages
        if m.server_content and m.server_content.output_transcription
    )


def audio(messages: list[types.LiveServerMessage]) -> bytes:
    return b"".join(m.data for m in messages if m.data)


@contextlib.asynccontextmanager
async def receiving(session: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(session)
    try:
        yield receiver
    finally:
        await receiver.stop()


@contextlib.asynccontextmanager
async def live(client: genai.Client, config: types.LiveConnectConfig) -> AsyncIterator[tuple[Any, Receiver]]:
    """A Live session on `client` and a Receiver already reading it."""
    async with (
        client.aio.live.connect(model="gemini-live-test", config=config) as session,
        receiving(session) as rx,
    ):
        yield session, rx
