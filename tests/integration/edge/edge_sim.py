"""Test doubles for the edge: a session worker on the audio bridge, and espeak speech.

The Twilio side is the product's own ``voiceagent.caller.SimulatedCaller``; the facts the edge
publishes are read from the real broker with ``call_inputs_from_now``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaConsumer, TopicPartition
from websockets.asyncio.client import ClientConnection, connect

from edge.audio.speech import synthesize, to_rate
from infra.kafka import make_consumer
from infra.settings import Settings
from schemas import bridge
from schemas.catalog import CALL_INPUTS


@contextlib.asynccontextmanager
async def call_inputs_from_now(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of the call inputs topic, positioned at its end: it sees the facts from now on."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    await consumer.topics()
    partitions = consumer.partitions_for_topic(CALL_INPUTS.name) or set()
    tps = [TopicPartition(CALL_INPUTS.name, p) for p in partitions]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    try:
        yield consumer
    finally:
        await consumer.stop()


def speech(text: str, rate: int) -> npt.NDArray[np.int16]:
    samples, source_rate = synthesize(text)
    return to_rate(samples, source_rate, rate)


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
