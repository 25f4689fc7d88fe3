"""Framing: the chunker never loses, reorders or invents bytes; PCM16 helpers round-trip."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.audio import framing
from edge.audio.framing import FrameChunker


def test_frame_size_constants_match_their_rates() -> None:
    assert framing.frame_bytes(8000, bytes_per_sample=1) == framing.MULAW_8K_FRAME_BYTES == 160
    assert framing.frame_bytes(8000) == framing.PCM16_8K_FRAME_BYTES == 320
    assert framing.frame_bytes(16000) == framing.PCM16_16K_FRAME_BYTES == 640
    assert framing.frame_bytes(24000) == framing.PCM16_24K_FRAME_BYTES == 960


def test_frame_bytes_refuses_fractional_frames() -> None:
    with pytest.raises(ValueError, match="whole number"):
        framing.frame_bytes(22050, frame_ms=10)


@given(
    frame=st.integers(1, 64),
    pushes=st.lists(st.binary(max_size=300), max_size=20),
)
def test_frames_plus_pending_is_everything_pushed(frame: int, pushes: list[bytes]) -> None:
    chunker = FrameChunker(frame)
    frames: list[bytes] = []
    for data in pushes:
        frames.extend(chunker.push(data))
        assert 0 <= chunker.pending < frame
    assert all(len(f) == frame for f in frames)
    assert b"".join(frames) + chunker.pending_bytes == b"".join(pushes)


def test_exact_twilio_frames_pass_straight_through() -> None:
    chunker = FrameChunker(framing.MULAW_8K_FRAME_BYTES)
    payload = bytes(range(160))
    assert chunker.push(payload) == [payload]
    assert chunker.pending == 0


def test_a_partial_frame_waits_for_the_rest() -> None:
    chunker = FrameChunker(4)
    assert chunker.push(b"abc") == []
    assert chunker.pending == 3
    assert chunker.push(b"defghij") == [b"abcd", b"efgh"]
    assert chunker.pending_bytes == b"ij"


def test_flush_pads_the_last_partial_frame_and_empties() -> None:
    chunker = FrameChunker(6)
    chunker.push(b"ab")
    assert chunker.flush(pad=b"\xff") == b"ab\xff\xff\xff\xff"
    assert chunker.pending == 0
    assert chunker.flush() is None


def test_reset_drops_pending_bytes() -> None:
    chunker = FrameChunker(6)
    chunker.push(b"abc")
    chunker.reset()
    assert chunker.push(b"123456") == [b"123456"]


@given(st.lists(st.integers(-32768, 32767), max_size=50))
def test_pcm16_bytes_and_arrays_round_trip(samples: list[int]) -> None:
    array = np.array(samples, dtype=np.int16)
    data = framing.array_to_pcm16(array)
    assert len(data) == 2 * len(samples)
    assert framing.pcm16_to_array(data).tolist() == samples


def test_pcm16_is_little_endian() -> None:
    assert framing.array_to_pcm16(np.array([1, -2], dtype=np.int16)) == b"\x01\x00\xfe\xff"
    with pytest.raises(ValueError, match="even"):
        framing.pcm16_to_array(b"\x00")
