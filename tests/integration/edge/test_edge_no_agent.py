"""A call no session worker serves ends with an apology, never in silence (real sockets and broker)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from edge_sim import BridgeWorker, call_inputs_from_now
from pydantic import SecretStr

from edge.server import EdgeServer
from edge.telephony import RecordingTelephony
from edge.twiml import UNAVAILABLE_MESSAGE, media_stream_url
from infra.process import free_port
from infra.settings import Settings
from schemas.codec import Codec
from voiceagent.caller import SimulatedCaller

pytestmark = pytest.mark.integration

AUTH_TOKEN = "edge-no-agent-auth-token"
AGENT_WAIT_S = 1.0
CODEC = Codec.single_object()


@pytest.fixture(scope="module")
async def edge(settings: Settings) -> AsyncIterator[tuple[EdgeServer, RecordingTelephony, str]]:
    port = free_port()
    edge_settings = settings.edge.model_copy(
        update={"port": port, "bridge_port": free_port(), "agent_wait_s": AGENT_WAIT_S}
    )
    twilio = settings.twilio.model_copy(
        update={"public_base_url": f"http://127.0.0.1:{port}", "auth_token": SecretStr(AUTH_TOKEN)}
    )
    telephony = RecordingTelephony()
    test_settings = settings.model_copy(update={"edge": edge_settings, "twilio": twilio})
    server = EdgeServer(test_settings, telephony=telephony)
    await server.start()
    try:
        yield server, telephony, media_stream_url(f"http://127.0.0.1:{port}")
    finally:
        await server.drain(deadline_s=0)
        await server.stop()


@pytest.fixture
async def inputs(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    async with call_inputs_from_now(settings) as consumer:
        yield consumer


async def _fact(consumer: AIOKafkaConsumer, kind: str, call_id: str, within: float = 15.0) -> Any:
    async def find() -> Any:
        while True:
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                for record in batch:
                    fact: Any = CODEC.decode(record.value) if record.value is not None else None
                    if type(fact).__name__ == kind and fact.call_id == call_id:
                        return fact

    return await asyncio.wait_for(find(), within)


def _caller(media_url: str) -> SimulatedCaller:
    return SimulatedCaller(
        media_url, AUTH_TOKEN, stream_sid="MZ" + uuid.uuid4().hex, call_sid="CA" + uuid.uuid4().hex
    )


def _params(call_id: str) -> dict[str, str]:
    return {
        "call_id": call_id,
        "tenant_id": "tenant-edge",
        "agent_id": "agent-x",
        "agent_version": "1",
        "direction": "inbound",
        "record": "false",
    }


async def test_a_stream_no_worker_comes_for_is_ended_with_an_apology(
    edge: tuple[EdgeServer, RecordingTelephony, str], inputs: AIOKafkaConsumer
) -> None:
    server, telephony, media_url = edge
    call_id = str(uuid.uuid4())
    caller = _caller(media_url)
    opened = time.monotonic()
    await caller.open(_params(call_id))  # frames flow all along: the idle timeout cannot end it
    stopped = await _fact(inputs, "MediaStreamStopped", call_id)
    assert stopped.reason == "no_agent"
    assert time.monotonic() - opened >= AGENT_WAIT_S
    await asyncio.wait_for(caller.closed.wait(), 5)  # the edge closed the caller's stream
    assert (caller.call_sid, UNAVAILABLE_MESSAGE) in telephony.said
    assert server.metrics.get("streams.no_agent") >= 1


async def test_a_call_whose_worker_leaves_and_none_takes_over_is_ended(
    edge: tuple[EdgeServer, RecordingTelephony, str], inputs: AIOKafkaConsumer
) -> None:
    _, telephony, media_url = edge
    call_id = str(uuid.uuid4())
    caller = _caller(media_url)
    await caller.open(_params(call_id))
    started = await _fact(inputs, "MediaStreamStarted", call_id)
    worker = BridgeWorker()
    await worker.open(started.bridge_url, started.bridge_token)
    await asyncio.sleep(AGENT_WAIT_S * 2)  # served: the call goes on past the wait
    assert not caller.closed.is_set()
    assert worker.audio  # and the worker hears the caller
    assert worker.ws is not None
    await worker.ws.close()  # the worker dies; no other takes the call over
    stopped = await _fact(inputs, "MediaStreamStopped", call_id)
    assert stopped.reason == "no_agent"
    assert (caller.call_sid, UNAVAILABLE_MESSAGE) in telephony.said
    await asyncio.wait_for(caller.closed.wait(), 5)
