"""Hand-built server frames parse as the same frames in a standard WebSocket client."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from edge.wsframe import BINARY, TEXT, server_frame


def _client_receives(data: bytes) -> list[Frame]:
    client = ClientProtocol(parse_uri("ws://edge/"), max_size=None, state=State.OPEN)
    client.receive_data(data)
    return [event for event in client.events_received() if isinstance(event, Frame)]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 652, 65535, 65536, 70000])
def test_every_length_encoding_parses_back(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frames = _client_receives(server_frame(BINARY, payload))
    assert [(f.opcode, f.fin, f.data) for f in frames] == [(Opcode.BINARY, True, payload)]


@given(st.text(max_size=400))
def test_text_frames_parse_back(text: str) -> None:
    frames = _client_receives(server_frame(TEXT, text.encode()))
    assert [(f.opcode, f.data.decode()) for f in frames] == [(Opcode.TEXT, text)]


def test_consecutive_frames_stay_in_order() -> None:
    data = b"".join(server_frame(BINARY, bytes([n]) * 652) for n in range(5))
    assert [f.data[0] for f in _client_receives(data)] == [0, 1, 2, 3, 4]
