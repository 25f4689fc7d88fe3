"""The process's one espeak-ng engine, shared by the caller simulator and the Gemini stand-in."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from infra.speech import ESPEAK_RATE, synthesize

_MALE, _FEMALE = "en-us", "en-us+f3"


def _pitch_hz(samples: npt.NDArray[np.int16]) -> float:
    """Median fundamental frequency of the loud frames, by autocorrelation."""
    x = samples.astype(np.float64)
    shortest, longest = ESPEAK_RATE // 400, ESPEAK_RATE // 60
    pitches = []
    for start in range(0, len(x) - 1024, 512):
        frame = x[start : start + 1024]
        if np.sqrt(np.mean(frame**2)) < 1000:
            continue
        corr = np.correlate(frame, frame, "full")[1023:]
        pitches.append(ESPEAK_RATE / (shortest + int(np.argmax(corr[shortest:longest]))))
    return float(np.median(pitches))


def test_interleaved_callers_each_get_their_own_voice() -> None:
    text = "hello there, how are you today"
    pitches = [(voice, _pitch_hz(synthesize(text, voice=voice))) for voice in [_MALE, _FEMALE] * 2]
    male = [hz for voice, hz in pitches if voice == _MALE]
    female = [hz for voice, hz in pitches if voice == _FEMALE]
    assert max(male) < 140 < min(female)
