"""Offline speech source for simulators and tests (espeak-ng, from infra); not used on the media path."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from infra import speech
from infra.speech import ESPEAK_RATE, SpeechSynthesisError
from infra.speech import resample as to_rate

__all__ = ["ESPEAK_RATE", "SpeechSynthesisError", "synthesize", "to_rate"]


def synthesize(text: str, *, voice: str = "en-us", rate_wpm: int = 170) -> tuple[npt.NDArray[np.int16], int]:
    """Speak `text` and return (int16 samples, 22050).

    Not bit-exact between calls: espeak-ng's output length varies by ~10 ms for the same text.
    """
    return speech.synthesize(text, voice=voice, rate_wpm=rate_wpm), ESPEAK_RATE
