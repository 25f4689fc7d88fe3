"""Twilio frame parsing: every bad input is a typed error value, never an exception."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import protocol

PAYLOAD = bytes(range(160))


def media(**overrides: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "event": "media",
        "sequenceNumber": "3",
        "streamSid": "MZ1",
        "media": {
            "track": "inbound",
            "chunk": "2",
            "timestamp": "40",
            "payload": base64.b64encode(PAYLOAD).decode(),
        },
    }
    return frame | overrides


def test_media_frame_parses_to_typed_value() -> None:
    frame = protocol.parse(json.dumps(media()))
    assert frame == protocol.Media(
        sequence_number=3, stream_sid="MZ1", track="inbound", chunk=2, timestamp_ms=40, payload=PAYLOAD
    )


def test_start_frame_carries_custom_parameters() -> None:
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ1",
        "start": {
            "streamSid": "MZ1",
            "accountSid": "AC1",
            "callSid": "CA1",
            "tracks": ["inbound"],
            "customParameters": {"call_id": "c1", "agent_version": "2"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
    frame = protocol.parse(json.dumps(start))
    assert isinstance(frame, protocol.Start)
    assert frame.custom_parameters == {"call_id": "c1", "agent_version": "2"}
    assert (frame.call_sid, frame.sample_rate, frame.sequence_number) == ("CA1", 8000, 1)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'{"event":"media"}', "binary"),
        ("not json at all", "not_json"),
        ("[1, 2, 3]", "malformed"),
        (json.dumps({"event": "hello"}), "unknown_event"),
        (json.dumps(media(media={"payload": "@@not-base64@@"})), "bad_base64"),
        (json.dumps(media(media="nope")), "malformed"),
        (json.dumps(media(sequenceNumber="seven")), "malformed"),
        (json.dumps({"event": "mark", "streamSid": "MZ1"}), "malformed"),
        (json.dumps({"event": "dtmf", "streamSid": 5, "dtmf": {"digit": "1"}}), "malformed"),
        (
            json.dumps(
                {"event": "start", "start": {"streamSid": "MZ", "callSid": "CA", "customParameters": ["x"]}}
            ),
            "malformed",
        ),
        ("x" * (protocol.DEFAULT_MAX_FRAME_CHARS + 1), "oversized"),
        ("[" * 5000 + "]" * 5000, "oversized"),
    ],
)
def test_bad_frames_are_error_values(raw: str | bytes, kind: str) -> None:
    result = protocol.parse(raw)
    assert isinstance(result, protocol.FrameError)
    assert result.kind == kind
    assert result.kind in protocol.ERROR_KINDS


def test_deep_nesting_within_the_size_cap_is_an_error_value() -> None:
    result = protocol.parse("[" * 4000 + "]" * 4000)
    assert isinstance(result, protocol.FrameError)


def test_outgoing_frames_are_the_documented_json() -> None:
    assert json.loads(protocol.media_message("MZ1", b"\xff\x00")) == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": base64.b64encode(b"\xff\x00").decode()},
    }
    assert json.loads(protocol.mark_message("MZ1", "m")) == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "m"},
    }
    assert json.loads(protocol.clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_field_names = st.sampled_from(
    ["event", "streamSid", "sequenceNumber", "media", "start", "mark", "dtmf", "stop", "payload", "timestamp"]
)
_frames = st.dictionaries(_field_names, _json, max_size=6).map(
    lambda d: d | {"event": d.get("event")}
) | st.fixed_dictionaries(
    {"event": st.sampled_from(["media", "start", "mark", "dtmf", "stop", "connected"])},
    optional={
        "streamSid": _json,
        "sequenceNumber": _json,
        "media": _json,
        "start": _json,
        "mark": _json,
        "dtmf": _json,
    },
)


@settings(max_examples=400, deadline=None)
@given(frame=_frames)
def test_parse_never_raises_on_json_shaped_input(frame: dict[str, Any]) -> None:
    result = protocol.parse(json.dumps(frame))
    assert isinstance(
        result,
        protocol.FrameError
        | protocol.Connected
        | protocol.Start
        | protocol.Media
        | protocol.Mark
        | protocol.Dtmf
        | protocol.Stop,
    )


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=300) | st.binary(max_size=300))
def test_parse_never_raises_on_arbitrary_input(raw: str | bytes) -> None:
    result = protocol.parse(raw)
    assert result is not None


def test_a_number_too_large_for_an_integer_is_malformed_not_a_crash() -> None:
    # Found by the property above: 1e400 is valid JSON and decodes to infinity.
    result = protocol.parse('{"event": "mark", "sequenceNumber": 1e400, "mark": {"name": "m"}}')
    assert isinstance(result, protocol.FrameError)
    assert result.kind == "malformed"


def _start(stream_sid: str = "MZ1", **media_format: Any) -> dict[str, Any]:
    return {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "streamSid": stream_sid,
            "callSid": "CA1",
            "customParameters": {"call_id": "c1"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1} | media_format,
        },
    }


@pytest.mark.parametrize(
    "frame",
    [
        _start(stream_sid="MZ\ud800"),
        {"event": "mark", "streamSid": "MZ1", "mark": {"name": "reply-\ud800"}},
        {"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "\udc00"}},
        {"event": "media", "streamSid": "MZ1", "media": {"payload": ""}, "\ud800": 1},
    ],
)
def test_a_lone_surrogate_anywhere_is_malformed(frame: dict[str, Any]) -> None:
    # Valid JSON text (an escaped surrogate), but no Unicode: the ids and facts built from it
    # could not be encoded, mid-call.
    result = protocol.parse(json.dumps(frame))
    assert isinstance(result, protocol.FrameError), result
    assert result.kind == "malformed"


@pytest.mark.parametrize("timestamp", ["-20", str(2**63), "1" + "0" * 40])
def test_a_timestamp_no_stream_can_have_is_malformed(timestamp: str) -> None:
    frame = media()
    frame["media"]["timestamp"] = timestamp
    result = protocol.parse(json.dumps(frame))
    assert isinstance(result, protocol.FrameError)
    assert result.kind == "malformed"


@pytest.mark.parametrize(
    ("media_format", "supported"),
    [
        ({}, True),
        ({"encoding": "audio/L16"}, False),
        ({"sampleRate": 2**40}, False),
        ({"sampleRate": 16000}, False),
        ({"channels": 2}, False),
    ],
)
def test_only_mulaw_8khz_mono_is_a_supported_format(media_format: dict[str, Any], supported: bool) -> None:
    frame = protocol.parse(json.dumps(_start(**media_format)))
    assert isinstance(frame, protocol.Start)
    assert protocol.supported_format(frame) is supported
