"""Call recordings: stereo WAV at stream time, stored in a directory or any fsspec object store."""

from __future__ import annotations

import io
import uuid
import wave
from pathlib import Path

import fsspec
import numpy as np

from edge.recording import CallRecording, store_recording


def _recording() -> CallRecording:
    recording = CallRecording()
    recording.add_caller(0, np.full(160, 1000, dtype="<i2").tobytes())  # 20 ms of caller at t=0
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
