"""Audio-bridge framing: round trips, compact binary audio, and errors as values."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import bridge

TEXT_MESSAGES: list[bridge.BridgeMessage] = [
    bridge.Hello(call_id="c1", stream_sid="MZ1", buffered_ms=40, dropped_ms=0),
    bridge.BargeIn(utterance_id="u1", played_ms=480, stream_ms=1200),
    bridge.MarkReached(name="reply-1", stream_ms=900),
    bridge.Dtmf(digit="5", stream_ms=100),
    bridge.StreamStopped(reason="twilio_stop"),
    bridge.BeginUtterance(utterance_id="u2"),
    bridge.PlayMark(name="reply-2"),
    bridge.ClearPlayback(),
    bridge.HangUp(reason="agent_hung_up"),
    bridge.Transfer(target="+14155550123"),
]


@pytest.mark.parametrize("message", TEXT_MESSAGES, ids=lambda m: type(m).__name__)
def test_text_messages_round_trip(message: bridge.BridgeMessage) -> None:
    frame = bridge.encode(message)
    assert isinstance(frame, str)
    assert bridge.decode(frame) == message


def test_audio_frames_are_a_nine_byte_header_and_pcm() -> None:
    pcm = bytes(range(256)) * 2 + bytes(128)
    frame = bridge.encode_caller_audio(7, 140, pcm)
    assert len(frame) == bridge.HEADER_LEN + 640
    assert frame[0] == bridge.CALLER_AUDIO
    assert bridge.decode(frame) == bridge.CallerAudio(seq=7, stream_ms=140, pcm=pcm)
    assert bridge.decode(bridge.encode_agent_audio(3, b"\x01\x00")) == bridge.AgentAudio(
        seq=3, pcm=b"\x01\x00"
    )


def test_hangup_reason_defaults() -> None:
    assert bridge.decode('{"type":"hangup"}') == bridge.HangUp()


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (b"\x01\x00", "short_frame"),
        (bridge.HEADER.pack(0x01, 0, 0) + b"\x00", "odd_pcm"),
        (bridge.HEADER.pack(0x7F, 0, 0), "unknown_kind"),
        (bridge.HEADER.pack(0x02, 0, 0) + bytes(bridge.MAX_AUDIO_BYTES + 2), "oversized"),
        ("{not json", "not_json"),
        ("[]", "malformed"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"mark"}', "malformed"),
        ('{"type":"mark","name":3}', "malformed"),
        ('{"type":"barge_in","utterance_id":"u","played_ms":true,"stream_ms":1}', "malformed"),
        (json.dumps({"type": "mark", "name": "x" * bridge.MAX_TEXT_CHARS}), "oversized"),
    ],
)
def test_bad_frames_are_error_values(frame: bytes | str, kind: str) -> None:
    result = bridge.decode(frame)
    assert isinstance(result, bridge.BridgeError)
    assert result.kind == kind


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_field_names = st.sampled_from(["type", "name", "utterance_id", "played_ms", "stream_ms", "reason", "target"])
# JSON objects shaped like directives, with any value in any field: random text is almost never
# a JSON object, so the text path past json.loads went untried.
_json_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "barge_in", "mark", "hangup", "transfer", "dance"]) | _json},
    optional={"name": _json, "utterance_id": _json, "played_ms": _json, "stream_ms": _json},
) | st.dictionaries(_field_names, _json, max_size=4)


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=64) | st.text(max_size=64) | _json_frames.map(json.dumps))
def test_decode_never_raises(frame: bytes | str) -> None:
    result = bridge.decode(frame)
    assert isinstance(result, bridge.BridgeError | bridge.BridgeMessage)


@settings(max_examples=200, deadline=None)
@given(seq=st.integers(0, 2**32 - 1), stream_ms=st.integers(0, 2**32 - 1), samples=st.binary(max_size=64))
def test_caller_audio_round_trips(seq: int, stream_ms: int, samples: bytes) -> None:
    pcm = samples[: len(samples) // 2 * 2]
    assert bridge.decode(bridge.encode_caller_audio(seq, stream_ms, pcm)) == bridge.CallerAudio(
        seq=seq, stream_ms=stream_ms, pcm=pcm
    )
