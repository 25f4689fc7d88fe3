"""G.711 μ-law codec between Twilio's 8 kHz payloads and little-endian int16 PCM."""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import numpy.typing as npt

# audioop is deprecated on 3.11/3.12 and provided by audioop-lts on 3.13+. Its ulaw2lin is the
# fastest decoder for 160-byte frames and its decode table is identical to ours (a test checks
# that), so we use it when present; the warning is silenced only around this import.
_audioop: ModuleType | None
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop as _audioop
    except ImportError:  # pragma: no cover - depends on the interpreter
        _audioop = None

CLIP = 32635
BIAS = 0x84
SILENCE_BYTE = 0xFF
_PCM16 = np.dtype("<i2")


def encode_sample(sample: int) -> int:
    """Encode one int16 sample with the 16-bit formulation (reference for the tables)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, CLIP) + BIAS
    exponent = magnitude.bit_length() - 8
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def decode_sample(code: int) -> int:
    """Decode one μ-law byte to an int16 value."""
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    magnitude = (((inverted & 0x0F) << 3) + BIAS) << exponent
    return BIAS - magnitude if inverted & 0x80 else magnitude - BIAS


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Indexed by the uint16 view of a sample, so encoding is a single gather.
    samples = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(samples), CLIP) + BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    codes: npt.NDArray[np.int32] = ~(sign | exponent << 4 | mantissa) & 0xFF
    return codes.astype(np.uint8)


def _build_decode_table() -> npt.NDArray[np.int16]:
    return np.array([decode_sample(code) for code in range(256)], dtype=_PCM16)


ENCODE_TABLE: npt.NDArray[np.uint8] = _build_encode_table()
DECODE_TABLE: npt.NDArray[np.int16] = _build_decode_table()


def decode_to_bytes(data: bytes) -> bytes:
    """Decode μ-law bytes to little-endian PCM16 bytes (two bytes per input byte)."""
    if _audioop is not None:
        pcm: bytes = _audioop.ulaw2lin(data, 2)
        return pcm
    return DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8)).tobytes()


def decode(data: bytes) -> npt.NDArray[np.int16]:
    """Decode μ-law bytes to int16 samples (a read-only view when audioop did the work)."""
    if _audioop is not None:
        return np.frombuffer(_audioop.ulaw2lin(data, 2), dtype=_PCM16)
    return DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8))


def encode(pcm: bytes | npt.NDArray[np.int16]) -> bytes:
    """Encode PCM16 (little-endian bytes or an int16 array) to μ-law bytes."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):  # a tuple checks faster than a union
        if len(pcm) % 2:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
        index = np.frombuffer(pcm, dtype="<u2")
    else:
        index = np.asarray(pcm, dtype=np.int16).view(np.uint16)
    return ENCODE_TABLE.take(index).tobytes()


def has_audioop() -> bool:
    """Tell whether decoding goes through the C `audioop` codec."""
    return _audioop is not None
