"""`call simulate --wav` with a file cut short: mid-frame it plays without the partial frame; cut in
its header it is a SimulationError, never a numpy ValueError."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from voiceagent.simulate import SimulationError, _read_wav


def _wav(path: Path, *, channels: int, samples: int, rate: int = 8000) -> bytes:
    """A 16-bit PCM WAV of a steady tone, written to `path`; its bytes."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.full(samples * channels, 1000, dtype="<i2").tobytes())
    return path.read_bytes()


@pytest.mark.parametrize(
    ("channels", "short_by"), [(1, 1), (2, 1), (2, 3)], ids=["mono-1", "stereo-1", "stereo-3"]
)
def test_a_wav_cut_mid_frame_plays_its_whole_frames(tmp_path: Path, channels: int, short_by: int) -> None:
    path = tmp_path / "cut.wav"
    whole = _wav(path, channels=channels, samples=800)
    path.write_bytes(whole[:-short_by])
    samples = _read_wav(path)
    assert len(samples) == 799  # 8 kHz already: one frame short of the 800 written
    assert set(samples.tolist()) == {1000}


def test_a_wav_whose_only_frame_is_cut_holds_no_audio(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav(path, channels=1, samples=1)[:-1])
    with pytest.raises(SimulationError, match="holds no audio"):
        _read_wav(path)


@pytest.mark.parametrize("kept", [12, 20, 36, 40, 43])  # in RIFF, fmt, the data chunk's header
def test_a_wav_cut_in_its_header_is_a_simulation_error(tmp_path: Path, kept: int) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav(path, channels=1, samples=800)[:kept])  # the header is 44 bytes
    with pytest.raises(SimulationError, match="not a WAV file the simulator can play"):
        _read_wav(path)
