"""Call recordings: stereo WAV at stream time, stored in a directory or any fsspec object store."""

from __future__ import annotations

import io
import uuid
import wave
from pathlib import Path

import fsspec
import numpy as np
import pytest

from edge.recording import MAX_AHEAD_MS, CallRecording, store_recording


def _recording() -> CallRecording:
    recording = CallRecording()
    recording.add_caller(0, np.full(160, 1000, dtype="<i2").tobytes(), now_ms=0)  # 20 ms of caller at t=0
    recording.add_heard(100, np.full(160, -2000, dtype="<i2").tobytes())  # 20 ms heard at t=100 ms
    return recording


def _channels(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    return frames, len(frames) * 1000 // 8000


def test_audio_lands_at_its_stream_time_in_its_own_channel() -> None:
    data, duration_ms = _recording().wav_bytes()
    frames, frames_ms = _channels(data)
    assert duration_ms == frames_ms == 120
    assert (frames[:160, 0] == 1000).all()
    assert (frames[:160, 1] == 0).all()
    assert (frames[800:960, 1] == -2000).all()
    assert (frames[160:, 0] == 0).all()


def test_a_recording_goes_to_an_object_store_by_url() -> None:
    bucket = f"memory://recordings-{uuid.uuid4().hex[:8]}/calls"
    uri, duration_ms = store_recording(_recording(), bucket, "call-1.wav")
    assert uri.startswith("memory://")  # fsspec's own spelling of the object's URL
    assert uri.endswith(f"{bucket.removeprefix('memory://')}/call-1.wav")
    with fsspec.open(uri, "rb") as stored:
        frames, _ = _channels(stored.read())
    assert duration_ms == 120
    assert (frames[:160, 0] == 1000).all()


def test_a_recording_goes_to_a_local_directory_as_a_file_uri(tmp_path: Path) -> None:
    uri, _ = store_recording(_recording(), str(tmp_path / "rec"), "call-2.wav")
    assert uri == (tmp_path / "rec" / "call-2.wav").as_uri()
    frames, _ = _channels((tmp_path / "rec" / "call-2.wav").read_bytes())
    assert (frames[800:960, 1] == -2000).all()


def _tone(value: int) -> bytes:
    return np.full(160, value, dtype="<i2").tobytes()


def test_one_absurd_caller_timestamp_does_not_grow_the_track() -> None:
    recording = CallRecording()
    assert recording.add_caller(0, _tone(1), now_ms=0)
    # 5.5 hours ahead of the call's clock: placed right after the audio so far, and refused.
    assert not recording.add_caller(20_000_000, _tone(2), now_ms=20)
    assert recording.duration_ms == 40
    assert recording.add_caller(40, _tone(3), now_ms=40)  # the real next frame goes on as before
    frames, _ = _channels(recording.wav_bytes()[0])
    assert list(frames[::160, 0]) == [1, 2, 3]


def test_caller_audio_within_the_call_clock_keeps_its_gap() -> None:
    recording = CallRecording()
    recording.add_caller(0, _tone(1), now_ms=0)
    assert recording.add_caller(MAX_AHEAD_MS, _tone(2), now_ms=0)  # a real gap of Twilio's
    assert recording.duration_ms == MAX_AHEAD_MS + 20


def test_heard_frames_are_contiguous_whatever_the_send_jitter() -> None:
    recording = CallRecording()
    sent_at = [0, 21, 41, 62, 79, 99, 100, 101, 102, 180]  # early, late, a catch-up burst, then 180
    for index, now_ms in enumerate(sent_at):
        recording.add_heard_frame(now_ms, _tone(index + 1))
    frames, _ = _channels(recording.wav_bytes()[0])
    heard = frames[:, 1]
    # Nine frames back to back from 0 ms (no gap, none overwritten), then one at its send time
    # after falling behind by more than a frame.
    assert list(heard[: 9 * 160 : 160]) == list(range(1, 10))
    assert np.count_nonzero(heard[: 9 * 160]) == 9 * 160
    assert heard[180 * 8] == 10
    assert not heard[9 * 160 : 180 * 8].any()


def test_a_cleared_playback_places_the_next_frame_at_its_send_time() -> None:
    recording = CallRecording()
    for index, now_ms in enumerate((0, 1, 2, 3)):  # a burst Twilio buffers: 80 ms ahead
        recording.add_heard_frame(now_ms, _tone(index + 1))
    recording.reanchor_heard()  # cleared: Twilio dropped what it had not played
    recording.add_heard_frame(25, _tone(9))
    frames, _ = _channels(recording.wav_bytes()[0])
    assert frames[25 * 8, 1] == 9


@pytest.mark.parametrize("name", ["../escaped.wav", "a/b.wav", ".hidden.wav", ""])
def test_a_recording_is_never_stored_outside_its_target(tmp_path: Path, name: str) -> None:
    recording = CallRecording()
    recording.add_caller(0, b"\x01\x00" * 160, now_ms=0)
    with pytest.raises(ValueError, match="plain file name"):
        store_recording(recording, str(tmp_path / "recordings"), name)
    assert not any(tmp_path.rglob("*.wav"))
