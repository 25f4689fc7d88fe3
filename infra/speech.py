"""Offline speech for simulators, tests and the Gemini stand-in: the process's one espeak-ng engine."""

from __future__ import annotations

import ctypes
import threading
from math import gcd

import numpy as np
import numpy.typing as npt
from scipy import signal

ESPEAK_RATE = 22050
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE_PARAMETER = 1
_EE_OK = 0

# int (*t_espeak_callback)(short *wav, int numsamples, espeak_EVENT *events)
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SpeechSynthesisError(RuntimeError):
    """libespeak-ng could not be loaded or refused the request."""


class _Espeak:
    """The loaded library, its callback and the buffer the callback fills (guarded by _LOCK).

    libespeak-ng keeps one global engine per process, so this is its only wrapper: the edge's
    simulator speech and the stand-in's voice both come through here.
    """

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if rate != ESPEAK_RATE:
            raise SpeechSynthesisError(f"espeak_Initialize returned {rate}")
        self.chunks: list[bytes] = []
        # The CFUNCTYPE object must outlive every synthesis, or the C side calls freed memory.
        self.callback = _SynthCallback(self._collect)
        self.lib.espeak_SetSynthCallback(self.callback)
        self.voice: str | None = None

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if wav and count > 0:
            self.chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # 0 means carry on synthesising

    def _select_voice(self, voice: str) -> None:
        if voice == self.voice:
            return
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SpeechSynthesisError(f"unknown espeak-ng voice {voice!r}")
        self.voice = voice

    def synthesize(self, text: str, voice: str, rate_wpm: int) -> npt.NDArray[np.int16]:
        self._select_voice(voice)
        self.lib.espeak_SetParameter(_ESPEAK_RATE_PARAMETER, rate_wpm, 0)
        encoded = text.encode("utf-8") + b"\0"
        self.chunks = []
        status = self.lib.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        if status != _EE_OK:
            raise SpeechSynthesisError(f"espeak_Synth returned {status}")
        pcm, self.chunks = b"".join(self.chunks), []
        return np.frombuffer(pcm, dtype="<i2").copy()


_LOCK = threading.Lock()
_engine: _Espeak | None = None


def synthesize(text: str, *, voice: str = "en-us", rate_wpm: int = 170) -> npt.NDArray[np.int16]:
    """Speak `text` as int16 samples at ESPEAK_RATE (blocking; thread-safe).

    Not bit-exact between calls: espeak-ng's output length varies by ~10 ms for the same text.
    """
    global _engine
    with _LOCK:
        if _engine is None:
            _engine = _Espeak()  # loaded on first use, never at import
        return _engine.synthesize(text, voice, rate_wpm)


def resample(samples: npt.NDArray[np.int16], src_rate: int, dst_rate: int) -> npt.NDArray[np.int16]:
    """Resample a whole utterance offline (polyphase; not for streaming)."""
    if src_rate == dst_rate:
        return samples.copy()
    common = gcd(src_rate, dst_rate)
    resampled: npt.NDArray[np.float64] = signal.resample_poly(
        samples.astype(np.float64), dst_rate // common, src_rate // common
    )
    return np.clip(np.rint(resampled), -32768, 32767).astype(np.int16)
