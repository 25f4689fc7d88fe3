"""Caller speech start/stop detection: a pure hysteresis state machine over webrtcvad decisions."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import webrtcvad

SILENCE_DBFS = -120.0
_FULL_SCALE = 32768.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStarted:
    """Speech began at `stream_ms` (the first voiced frame of the confirmed onset)."""

    stream_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStopped:
    """Speech ended at `stream_ms` (the end of the last voiced frame)."""

    stream_ms: int
    duration_ms: int


SpeechEvent = SpeechStarted | SpeechStopped


@dataclass(frozen=True, slots=True, kw_only=True)
class VadPolicy:
    """How many voiced frames confirm an onset and how many unvoiced frames end speech."""

    onset_frames: int = 3
    hangover_frames: int = 15

    def __post_init__(self) -> None:
        if self.onset_frames < 1 or self.hangover_frames < 1:
            raise ValueError("onset_frames and hangover_frames must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class VadState:
    """Where the detector stands.

    `run` counts consecutive frames that disagree with `speaking` (voiced frames while silent,
    unvoiced frames while speaking); `run_ms` is the timestamp of the first of them.
    """

    speaking: bool = False
    run: int = 0
    run_ms: int = 0
    started_ms: int = 0


DEFAULT_POLICY = VadPolicy()


def step(
    state: VadState, is_speech: bool, stream_ms: int, policy: VadPolicy = DEFAULT_POLICY
) -> tuple[VadState, SpeechEvent | None]:
    """Fold one frame's voiced/unvoiced decision, taken at `stream_ms`, into the state."""
    if is_speech != state.speaking:
        run_ms = stream_ms if state.run == 0 else state.run_ms
        run = state.run + 1
        if not state.speaking and run >= policy.onset_frames:
            return VadState(speaking=True, started_ms=run_ms), SpeechStarted(stream_ms=run_ms)
        if state.speaking and run >= policy.hangover_frames:
            stopped = SpeechStopped(stream_ms=run_ms, duration_ms=run_ms - state.started_ms)
            return VadState(), stopped
        return replace(state, run=run, run_ms=run_ms), None
    if state.run:
        # A blip shorter than the onset (or a gap shorter than the hang-over) is forgotten.
        return replace(state, run=0, run_ms=0), None
    return state, None


def finish(state: VadState, stream_ms: int) -> tuple[VadState, SpeechEvent | None]:
    """End of stream at `stream_ms`: close an open utterance where the last voice stopped."""
    if not state.speaking:
        return VadState(), None
    end_ms = state.run_ms if state.run else stream_ms
    return VadState(), SpeechStopped(stream_ms=end_ms, duration_ms=end_ms - state.started_ms)


def energy_dbfs(frame: npt.NDArray[np.int16] | bytes) -> float:
    """RMS level of a PCM16 frame in dB relative to full scale (SILENCE_DBFS for digital zero)."""
    samples = np.frombuffer(frame, dtype="<i2") if isinstance(frame, bytes) else frame
    if samples.size == 0:
        return SILENCE_DBFS
    values = samples.astype(np.float64)
    mean_square = float(np.dot(values, values)) / values.size
    if mean_square <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * math.log10(mean_square / (_FULL_SCALE * _FULL_SCALE)))


class SpeechDetector:
    """webrtcvad per frame, then `step`; holds the VAD handle, a `VadState` and a warm-up count."""

    def __init__(
        self,
        aggressiveness: int = 2,
        *,
        sample_rate: int = 16000,
        onset_frames: int = 3,
        hangover_frames: int = 15,
        warmup_frames: int = 5,
    ) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0-3, got {aggressiveness}")
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"webrtcvad does not support {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.policy = VadPolicy(onset_frames=onset_frames, hangover_frames=hangover_frames)
        if warmup_frames < 0:
            raise ValueError(f"warmup_frames must be >= 0, got {warmup_frames}")
        self.state = VadState()
        # webrtcvad flags the first ~4 frames of any non-silent stream (even -50 dBFS white
        # noise) as speech while its noise model settles; those decisions are not trusted.
        self.warmup_frames = warmup_frames
        self._frames_seen = 0
        self._vad = webrtcvad.Vad(aggressiveness)
        self._allowed_bytes = {sample_rate * ms // 1000 * 2 for ms in (10, 20, 30)}

    @property
    def speaking(self) -> bool:
        """True between a SpeechStarted and the next SpeechStopped."""
        return self.state.speaking

    def is_speech(self, frame: npt.NDArray[np.int16] | bytes) -> bool:
        """The raw webrtcvad decision for one 10, 20 or 30 ms frame."""
        data = frame if isinstance(frame, bytes) else np.asarray(frame, dtype="<i2").tobytes()
        if len(data) not in self._allowed_bytes:
            raise ValueError(
                f"webrtcvad needs 10, 20 or 30 ms at {self.sample_rate} Hz, got {len(data)} bytes"
            )
        return bool(self._vad.is_speech(data, self.sample_rate))

    def process(self, frame: npt.NDArray[np.int16] | bytes, stream_ms: int) -> SpeechEvent | None:
        """Classify the frame starting at `stream_ms` and return the event it causes, if any."""
        voiced = self.is_speech(frame)
        if self._frames_seen < self.warmup_frames:
            self._frames_seen += 1
            voiced = False
        self.state, event = step(self.state, voiced, stream_ms, self.policy)
        return event

    def finish(self, stream_ms: int) -> SpeechEvent | None:
        """Close the stream; returns SpeechStopped if speech was still open."""
        self.state, event = finish(self.state, stream_ms)
        return event

    def reset(self) -> None:
        """Forget the current utterance (the VAD's adaptive noise estimate is kept)."""
        self.state = VadState()
