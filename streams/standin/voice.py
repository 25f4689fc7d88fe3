"""The stand-in's voice: espeak-ng (from the espeakng-loader wheel, via ctypes) resampled to 24 kHz.

This deliberately repeats the approach of `edge/audio/speech.py`: `streams` may not import
`edge` (import-linter contract), and the stand-in needs only a small part of it. Replies are
cached by text, so a benchmark that replays a script pays for synthesis once.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
from math import gcd

import numpy as np
import numpy.typing as npt
from scipy import signal

ESPEAK_RATE = 22050
OUTPUT_RATE = 24000
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE_PARAMETER = 1
_EE_OK = 0
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_log = logging.getLogger(__name__)


class VoiceError(RuntimeError):
    """libespeak-ng could not be loaded or refused the text."""


class _Engine:
    """The loaded library and the buffer its callback fills; used only under `_LOCK`."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int]
        lib.espeak_Synth.argtypes += [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if rate != ESPEAK_RATE:
            raise VoiceError(f"espeak_Initialize returned {rate}")
        self.lib = lib
        self.chunks: list[bytes] = []
        # The callback object must outlive every synthesis, or C calls freed memory.
        self.callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self.callback)
        self.voice: str | None = None

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if wav and count > 0:
            self.chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    def speak(self, text: str, voice: str, rate_wpm: int) -> npt.NDArray[np.int16]:
        # libespeak-ng is one global engine; another wrapper in this process (the edge's test
        # speech and the Gemini stand-in share it) may have replaced our callback or voice.
        self.lib.espeak_SetSynthCallback(self.callback)
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise VoiceError(f"unknown espeak-ng voice {voice!r}")
        self.voice = voice
        self.lib.espeak_SetParameter(_ESPEAK_RATE_PARAMETER, rate_wpm, 0)
        encoded = text.encode("utf-8") + b"\0"
        self.chunks = []
        status = self.lib.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        if status != _EE_OK:
            raise VoiceError(f"espeak_Synth returned {status}")
        pcm, self.chunks = b"".join(self.chunks), []
        samples: npt.NDArray[np.int16] = np.frombuffer(pcm, dtype="<i2").copy()
        return samples


_LOCK = threading.Lock()
_engine: _Engine | None = None


def synthesize(text: str, *, voice: str = "en-us", rate_wpm: int = 175) -> npt.NDArray[np.int16]:
    """Speak `text` at espeak's native 22,050 Hz (blocking; call it from a thread)."""
    global _engine
    with _LOCK:
        if _engine is None:
            _engine = _Engine()
        return _engine.speak(text, voice, rate_wpm)


def resample(samples: npt.NDArray[np.int16], src_rate: int, dst_rate: int) -> npt.NDArray[np.int16]:
    """Whole-utterance polyphase resampling (not for streaming)."""
    if src_rate == dst_rate:
        return samples.copy()
    common = gcd(src_rate, dst_rate)
    out: npt.NDArray[np.float64] = signal.resample_poly(
        samples.astype(np.float64), dst_rate // common, src_rate // common
    )
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


@functools.lru_cache(maxsize=512)
def reply_pcm(text: str, voice: str = "en-us") -> bytes:
    """The reply as PCM16LE at 24 kHz, as the Live API sends it (cached by text)."""
    pcm = resample(synthesize(text, voice=voice), ESPEAK_RATE, OUTPUT_RATE).astype("<i2").tobytes()
    _log.debug("offline stand-in synthesised %d ms for %r", len(pcm) // 48, text[:40])
    return pcm
