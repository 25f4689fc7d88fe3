"""Call recording: caller and what the caller heard, as a stereo 8 kHz PCM16 WAV (left / right)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 8000
_BYTES_PER_MS = RATE * 2 // 1000


class CallRecording:
    """Two growing 8 kHz PCM16 tracks; audio is placed at its stream time, silence fills the rest."""

    def __init__(self) -> None:
        self._caller = bytearray()
        self._heard = bytearray()

    def add_caller(self, stream_ms: int, pcm8k: bytes) -> None:
        _place(self._caller, stream_ms, pcm8k)

    def add_heard(self, stream_ms: int, pcm8k: bytes) -> None:
        _place(self._heard, stream_ms, pcm8k)

    @property
    def duration_ms(self) -> int:
        return max(len(self._caller), len(self._heard)) // _BYTES_PER_MS

    def write_wav(self, path: Path) -> int:
        """Write the stereo WAV; returns its duration in ms."""
        length = max(len(self._caller), len(self._heard)) // 2
        stereo = np.zeros((length, 2), dtype="<i2")
        left = np.frombuffer(bytes(self._caller), dtype="<i2")
        right = np.frombuffer(bytes(self._heard), dtype="<i2")
        stereo[: left.size, 0] = left
        stereo[: right.size, 1] = right
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(stereo.tobytes())
        return length * 1000 // RATE


def _place(track: bytearray, stream_ms: int, pcm: bytes) -> None:
    start = max(0, stream_ms) * _BYTES_PER_MS
    if start > len(track):
        track.extend(bytes(start - len(track)))
    track[start : start + len(pcm)] = pcm
