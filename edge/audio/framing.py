"""Fixed 20 ms framing of μ-law and PCM16 byte streams, and PCM16 bytes <-> int16 arrays."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FRAME_MS = 20
MULAW_8K_FRAME_BYTES = 160  # 8000 Hz x 20 ms x 1 byte
PCM16_8K_FRAME_BYTES = 320
PCM16_16K_FRAME_BYTES = 640  # 16000 Hz x 20 ms x 2 bytes
PCM16_24K_FRAME_BYTES = 960  # 24000 Hz x 20 ms x 2 bytes
PCM16_16K_FRAME_SAMPLES = 320

_PCM16 = np.dtype("<i2")


def frame_bytes(sample_rate: int, *, bytes_per_sample: int = 2, frame_ms: int = FRAME_MS) -> int:
    """Bytes in one frame of `frame_ms` at `sample_rate` (must come out whole)."""
    samples, remainder = divmod(sample_rate * frame_ms, 1000)
    if remainder:
        raise ValueError(f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples")
    return samples * bytes_per_sample


def pcm16_to_array(data: bytes) -> npt.NDArray[np.int16]:
    """View little-endian PCM16 bytes as int16 samples (read-only, no copy)."""
    if len(data) % 2:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype=_PCM16)


def array_to_pcm16(samples: npt.NDArray[np.int16]) -> bytes:
    """Serialise int16 samples as little-endian PCM16 bytes."""
    return np.asarray(samples, dtype=_PCM16).tobytes()


class FrameChunker:
    """Cut an arbitrary byte stream into fixed-size frames, carrying the remainder.

    Invariant: the concatenation of every frame returned so far plus `pending` is exactly the
    concatenation of everything pushed.
    """

    __slots__ = ("_carry", "frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes < 1:
            raise ValueError(f"frame_bytes must be positive, got {frame_bytes}")
        self.frame_bytes = frame_bytes
        self._carry = b""

    @property
    def pending(self) -> int:
        """Bytes held back until the next frame is complete."""
        return len(self._carry)

    @property
    def pending_bytes(self) -> bytes:
        """The bytes held back, for a final partial frame or a flush."""
        return self._carry

    def push(self, data: bytes) -> list[bytes]:
        """Append `data` and return every frame it completes, in order."""
        size = self.frame_bytes
        if not self._carry and len(data) == size:
            return [bytes(data)]  # the common case for Twilio frames: no copy, no carry
        buffer = self._carry + data
        whole = len(buffer) - len(buffer) % size
        self._carry = buffer[whole:]
        return [buffer[start : start + size] for start in range(0, whole, size)]

    def flush(self, pad: bytes = b"") -> bytes | None:
        """Return the partial frame, padded to full size with `pad` repeated if given."""
        carry, self._carry = self._carry, b""
        if not carry:
            return None
        if pad:
            missing = self.frame_bytes - len(carry)
            carry += (pad * (missing // len(pad) + 1))[:missing]
        return carry

    def reset(self) -> None:
        """Drop the pending bytes (after a `clear`, say)."""
        self._carry = b""
