"""The stand-in's voice: the shared espeak-ng engine (infra.speech) resampled to 24 kHz.

Replies are cached by text, so a benchmark that replays a script pays for synthesis once.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import numpy.typing as npt

from infra import speech
from infra.speech import ESPEAK_RATE, resample

__all__ = ["ESPEAK_RATE", "OUTPUT_RATE", "reply_pcm", "resample", "synthesize"]

OUTPUT_RATE = 24000
_log = logging.getLogger(__name__)


def synthesize(text: str, *, voice: str = "en-us", rate_wpm: int = 175) -> npt.NDArray[np.int16]:
    """Speak `text` at espeak's native 22,050 Hz (blocking; call it from a thread)."""
    return speech.synthesize(text, voice=voice, rate_wpm=rate_wpm)


@functools.lru_cache(maxsize=512)
def reply_pcm(text: str, voice: str = "en-us") -> bytes:
    """The reply as PCM16LE at 24 kHz, as the Live API sends it (cached by text)."""
    pcm = resample(synthesize(text, voice=voice), ESPEAK_RATE, OUTPUT_RATE).astype("<i2").tobytes()
    _log.debug("offline stand-in synthesised %d ms for %r", len(pcm) // 48, text[:40])
    return pcm
