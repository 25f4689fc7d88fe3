"""Fakes for CallSession tests: a scripted Live session and an in-process edge bridge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.genai import types
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from schemas import bridge
from schemas.agents import AgentConfig
from schemas.calls import CallInput
from schemas.ids import AgentId, CallId, TenantId
from streams.calls.state import CallState, CallStatus, MediaStream
from streams.sessions.live_config import DEFAULT_CONFIG, SessionPlan
from streams.sessions.session import SessionTarget

TOKEN = "good-token"
CALL_STARTED = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CALLER_FRAME_BYTES = 640  # 20 ms of PCM16 at 16 kHz, what FakeEdge.say sends per frame


class FakeLive:
    """One Live connection: the test feeds server messages (or exceptions) and reads what was sent."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.inbox: asyncio.Queue[types.LiveServerMessage | BaseException] = asyncio.Queue()
        self.audio: list[bytes] = []
        self.texts: list[str] = []
        self.tool_responses: list[types.FunctionResponse] = []
        self.send_error: BaseException | None = None

    @property
    def frames_heard(self) -> int:
        """Caller frames received, however the session batched them into realtime inputs."""
        return sum(len(chunk) for chunk in self.audio) // CALLER_FRAME_BYTES

    def push(self, **fields: Any) -> None:
        self.inbox.put_nowait(types.LiveServerMessage.model_validate(fields))

    def fail(self, error: BaseException) -> None:
        self.inbox.put_nowait(error)

    async def send_realtime_input(self, *, audio: types.Blob) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.audio.append(audio.data or b"")

    async def send_client_content(self, *, turns: types.Content, turn_complete: bool) -> None:
        self.texts.extend(p.text or "" for p in turns.parts or [])

    async def send_tool_response(self, *, function_responses: list[types.FunctionResponse]) -> None:
        self.tool_responses.extend(function_responses)

    async def receive(self) -> AsyncIterator[types.LiveServerMessage]:
        while True:
            item = await self.inbox.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.server_content is not None and item.server_content.turn_complete:
                return


@dataclass
class FakeGemini:
    """The connector: each connect() takes the next planned outcome (a FakeLive or an exception)."""

    plans: list[FakeLive | BaseException] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)
    started: list[FakeLive] = field(default_factory=list)
    """The sessions connected so far, in order."""
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def live(self) -> FakeLive:
        session = FakeLive({})
        self.plans.append(session)
        return session

    @contextlib.asynccontextmanager
    async def connect(self, model: str, config: dict[str, Any]) -> AsyncIterator[FakeLive]:
        self.configs.append(config)
        if not self.plans:
            raise OSError("no more planned connections")
        plan = self.plans.pop(0)
        if isinstance(plan, BaseException):
            raise plan
        plan.config = config
        self.started.append(plan)
        self.opened.set()
        yield plan


class FakeSink:
    def __init__(self) -> None:
        self.records: list[CallInput] = []

    async def publish(self, record: CallInput, *, wait: bool = False) -> None:
        self.records.append(record)

    def kinds(self) -> list[str]:
        return [type(r).__name__ for r in self.records]

    def of(self, kind: str) -> list[Any]:
        return [r for r in self.records if type(r).__name__ == kind]


class FakeEdge:
    """A bridge server on a real socket: hello first, marks answered at once (unless held, as a
    caller's phone still playing the audio before them would), frames recorded."""

    def __init__(self, *, refuse_with: int | None = None) -> None:
        self.refuse_with = refuse_with
        self.received: list[bridge.BridgeMessage | bridge.BridgeError] = []
        self.hold_marks = False
        """Keep marks unanswered until ``play_marks`` (the audio before them is still playing)."""
        self.held_marks: list[str] = []
        self.connections: list[ServerConnection] = []
        self.workers: list[str | None] = []
        """The worker id each connection attempt named (``bridge.WORKER_HEADER``), refused or not."""
        self.connected = asyncio.Event()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/bridge/call-1"

    async def __aenter__(self) -> FakeEdge:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        self.workers.append(request.headers.get(bridge.WORKER_HEADER) if request is not None else None)
        if (
            self.refuse_with is not None
            or request is None
            or request.headers.get(bridge.TOKEN_HEADER) != TOKEN
        ):
            await connection.close(self.refuse_with or bridge.CLOSE_BAD_TOKEN, "refused")
            return
        await connection.send(bridge.encode_text(bridge.Hello(call_id="call-1", stream_sid="MZ1")))
        self.connections.append(connection)
        self.connected.set()
        with contextlib.suppress(ConnectionClosed):
            async for frame in connection:
                message = bridge.decode(frame)
                self.received.append(message)
                if isinstance(message, bridge.PlayMark) and self.hold_marks:
                    self.held_marks.append(message.name)
                elif isinstance(message, bridge.PlayMark):
                    await connection.send(
                        bridge.encode_text(bridge.MarkReached(name=message.name, stream_ms=0))
                    )

    async def play_marks(self) -> None:
        """The held marks have played: answer them, and every later one at once."""
        self.hold_marks = False
        marks, self.held_marks = self.held_marks, []
        for name in marks:
            await self.send(bridge.MarkReached(name=name, stream_ms=0))

    async def send(self, message: bridge.BridgeMessage | bytes | str) -> None:
        frame = message if isinstance(message, bytes | str) else bridge.encode(message)
        await self.connections[-1].send(frame)

    async def say(self, frames: int = 3) -> None:
        for seq in range(frames):
            await self.send(
                bridge.CallerAudio(seq=seq, stream_ms=seq * 20, pcm=b"\x01\x00" * (CALLER_FRAME_BYTES // 2))
            )

    async def stop_stream(self) -> None:
        await self.send(bridge.StreamStopped(reason="twilio_stop"))
        await self.connections[-1].close(bridge.CLOSE_CALL_ENDED, "stream ended")

    def kinds(self) -> list[str]:
        return [type(m).__name__ for m in self.received]


def target(url: str, *, config: AgentConfig = DEFAULT_CONFIG, handle: str | None = None) -> SessionTarget:
    return SessionTarget(
        tenant_id="t-1",
        agent_id="agent-1",
        call_id="call-1",
        bridge_url=url,
        bridge_token=TOKEN,
        plan=SessionPlan(call_id="call-1", config=config, resumption_handle=handle),
        worker_id="w-1",
    )


def live_call_state(bridge_url: str, token: str = TOKEN, *, at: datetime = CALL_STARTED) -> CallState:
    """A call in conversation with a media stream, as the calls worker's table holds it."""
    return CallState(
        call_id=CallId("call-1"),
        tenant_id=TenantId("t-1"),
        seq=3,
        status=CallStatus.IN_CONVERSATION,
        direction="inbound",
        agent_id=AgentId("agent-1"),
        agent_version=1,
        started_at=at,
        last_activity_at=at,
        stream=MediaStream(
            stream_sid="MZ1",
            edge_id="edge-1",
            bridge_url=bridge_url,
            bridge_token=token,
            token_expires_at=at + timedelta(hours=1),
        ),
    )


async def eventually(condition: Any, within: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
