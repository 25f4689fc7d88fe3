"""`call simulate` with a part of the platform not answering: a message naming where, never a traceback."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

import voiceagent.simulate as sim
from voiceagent import calls as cli_calls
from voiceagent import cli
from voiceagent.caller import SimulatedCaller
from voiceagent.devfile import DevAddresses
from voiceagent.simulate import Connected, SimulationError

DEMO = {"agent_id": "a1", "name": "demo", "config": {"phone_numbers": ["+15550100000"]}}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nowhere() -> str:
    """An address where nothing listens."""
    return f"http://127.0.0.1:{_closed_port()}"


def _addresses(**changed: Any) -> DevAddresses:
    fields: dict[str, Any] = {
        "bootstrap": "127.0.0.1:1",
        "database_url": "postgresql://nobody@127.0.0.1:1/none",
        "api_url": _nowhere(),
        "api_key": "k",
        "edge_url": _nowhere(),
        "twilio_auth_token": "t",
        "standin_control_url": None,
        "demo_agent_id": None,
        "demo_number": "+15550100000",
        "twilio_standin_url": None,
    }
    return DevAddresses(**(fields | changed))


@pytest.fixture
def platform_without_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent is found and the call events are followed, with no API or broker to ask."""

    async def following_at_once(*args: object, **kwargs: object) -> None:
        return None

    async def follow_nothing(self: sim.CallWatch, *args: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(sim, "_agent", lambda addresses, agent: DEMO)
    monkeypatch.setattr(sim, "until_following", following_at_once)
    monkeypatch.setattr(sim.CallWatch, "follow", follow_nothing)


def _simulate(monkeypatch: pytest.MonkeyPatch, data_dir: Path, addresses: DevAddresses, *argv: str) -> object:
    addresses.write(data_dir)
    monkeypatch.setenv("VOICE_DATA_DIR", str(data_dir))
    monkeypatch.setattr(
        sys, "argv", ["voiceagent", "call", "simulate", "--agent", "demo", "--say", "hi", *argv]
    )
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return exited.value.code


def _said(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().out.split())  # rich wraps long lines


@pytest.mark.usefixtures("platform_without_broker")
def test_an_unreachable_edge_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    addresses = _addresses()
    assert _simulate(monkeypatch, tmp_path, addresses) == 1
    said = _said(capsys)
    assert f"the edge does not answer at {addresses.edge_url}" in said
    assert "is `voiceagent dev` running?" in said


@pytest.mark.usefixtures("platform_without_broker")
@pytest.mark.parametrize("argv", [(), ("--outbound",)], ids=["dial", "register"])
def test_an_unreachable_twilio_standin_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    addresses = _addresses(twilio_standin_url=_nowhere())
    assert _simulate(monkeypatch, tmp_path, addresses, *argv) == 1
    assert f"the offline Twilio stand-in does not answer at {addresses.twilio_standin_url}" in _said(capsys)


class RegisteredPhone:
    """A phone line the (absent) Twilio stand-in took: registering works, nothing else is asked."""

    number = "+15550160000"
    standin_url = "http://standin.invalid"

    async def register(self) -> None:
        """Registered."""


async def test_an_unreachable_api_is_named_when_placing_an_outbound_call() -> None:
    addresses = _addresses()
    async with httpx.AsyncClient() as http:
        with pytest.raises(
            SimulationError, match=f"the platform's API does not answer at {addresses.api_url}"
        ):
            await sim._ring(addresses, http, RegisteredPhone(), "a1", Console(quiet=True))  # type: ignore[arg-type]


async def test_an_unreachable_gemini_standin_is_named_when_scripting_it() -> None:
    control = _nowhere()
    async with httpx.AsyncClient() as http:
        with pytest.raises(SimulationError, match=f"control endpoint does not answer at {control}"):
            await sim._script_standin(http, control, "call-1", ["hi"], None)


async def test_a_script_the_gemini_standin_refuses_is_an_error_with_its_message() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": "turns[0].caller: must be a string"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(SimulationError, match=r"HTTP 422 turns\[0\].caller: must be a string"):
            await sim._script_standin(http, "http://standin", "call-1", ["hi"], None)


def _connected(media_url: str) -> Connected:
    return Connected(call_id="call-1", call_sid="CA1", media_url=media_url, parameters={"call_id": "call-1"})


def _caller(media_url: str) -> SimulatedCaller:
    return SimulatedCaller(media_url, "t", stream_sid="MZ1", call_sid="CA1")


async def test_an_unreachable_media_stream_is_named() -> None:
    url = f"ws://127.0.0.1:{_closed_port()}/twilio/media"
    with pytest.raises(SimulationError, match=f"does not answer at {url}.*voiceagent dev"):
        await sim._open_stream(_caller(url), _connected(url))


@pytest.fixture
async def refusing_edge() -> AsyncIterator[str]:
    """A server that answers the WebSocket upgrade with 403, as the edge does to a bad signature."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/twilio/media"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_refused_media_stream_is_named(refusing_edge: str) -> None:
    with pytest.raises(SimulationError, match=f"the edge refused the Media Stream at {refusing_edge}.*403"):
        await sim._open_stream(_caller(refusing_edge), _connected(refusing_edge))


@pytest.mark.usefixtures("platform_without_broker")
def test_a_refusal_is_printed_as_sent_not_read_as_markup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def refused(*args: object, **kwargs: object) -> None:
        raise SimulationError("the stand-in refused: [script:call-1] is not allowed")

    monkeypatch.setattr(cli_calls, "simulate_call", refused)
    assert _simulate(monkeypatch, tmp_path, _addresses()) == 1
    assert "[script:call-1] is not allowed" in _said(capsys)
