"""Streaming polyphase FIR resamplers for 20 ms int16 frames, with state carried across calls."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import signal

_Float = npt.NDArray[np.float32]
_Int16 = npt.NDArray[np.int16]


def design_lowpass(
    up: int, down: int, *, passband: float = 0.85, stopband_db: float = 65.0
) -> npt.NDArray[np.float64]:
    """Design the prototype low-pass at `up` times the input rate.

    `passband` is the pass edge as a fraction of the lower of the two Nyquist frequencies
    (0.85 of 4 kHz is the 3.4 kHz telephone band); the stopband starts at that Nyquist, so
    nothing above it can alias back in when decimating, nor image when interpolating.
    """
    if not 0.0 < passband < 1.0:
        raise ValueError(f"passband must be in (0, 1), got {passband}")
    edge = 1.0 / max(up, down)  # lower Nyquist, normalised to the upsampled Nyquist
    numtaps, beta = signal.kaiserord(stopband_db, edge * (1.0 - passband))
    # An odd length whose half-length divides by `down` keeps the delay a whole output sample.
    step = 2 * down
    numtaps = ((numtaps - 1 + step - 1) // step) * step + 1
    cutoff = edge * (1.0 + passband) / 2.0
    taps = signal.firwin(numtaps, cutoff, window=("kaiser", beta))
    return np.asarray(taps * up, dtype=np.float64)  # gain `up` restores the level of stuffed zeros


class StreamingResampler:
    """Resample by `up/down` frame by frame; each call returns exactly len*up/down samples.

    Output n is sum_k h[k] * x_up[n*down - k] over the whole stream (what
    `scipy.signal.upfirdn(h, x, up, down)` computes on one block), so frame joins are seamless
    and the delay is the filter's constant group delay, `delay_samples` at the output rate.
    Frames whose length is not a multiple of `down` are allowed: the phase is carried over.
    """

    def __init__(
        self,
        up: int,
        down: int,
        taps: npt.ArrayLike | None = None,
    ) -> None:
        if up < 1 or down < 1:
            raise ValueError(f"up and down must be positive, got {up}/{down}")
        common = math.gcd(up, down)
        self.up, self.down = up // common, down // common
        prototype = np.asarray(design_lowpass(self.up, self.down) if taps is None else taps, dtype=np.float64)
        if prototype.ndim != 1 or prototype.size == 0:
            raise ValueError("taps must be a non-empty 1-D sequence")
        self.taps: npt.NDArray[np.float64] = prototype
        self._width = -(-prototype.size // self.up)  # input samples under the filter per output
        padded = np.zeros(self._width * self.up)
        padded[: prototype.size] = prototype
        # Row p holds h[p], h[p+up], ... reversed, to dot with a forward window of the input.
        self._phases: _Float = np.ascontiguousarray(
            padded.reshape(self._width, self.up).T[:, ::-1], dtype=np.float32
        )
        self._buffer: _Float = np.zeros(self._width - 1, dtype=np.float32)
        self._plans: dict[tuple[int, int], _Plan] = {}
        self._offset = 0  # position of the next output within the new frame, in up-rate samples

    @classmethod
    def for_rates(cls, src_rate: int, dst_rate: int) -> StreamingResampler:
        """Build the resampler between two sample rates in Hz."""
        return cls(dst_rate, src_rate)

    @property
    def delay_samples(self) -> float:
        """Group delay at the output rate (a whole number for the default designs)."""
        return (self.taps.size - 1) / 2.0 / self.down

    def output_length(self, input_length: int) -> int:
        """How many samples the next call with `input_length` samples will return."""
        return max(0, -(-(input_length * self.up - self._offset) // self.down))

    def process(self, frame: _Int16) -> _Int16:
        """Resample one frame of int16 samples."""
        length = len(frame)
        history = self._width - 1
        if self._buffer.size != history + length + self.down:
            self._resize(length)
        buffer = self._buffer
        buffer[history : history + length] = frame
        plan = self._plan(length)
        out: _Float = np.dot(plan.windows, plan.coefficients).ravel()[: plan.count]
        buffer[:history] = buffer[length : length + history]
        self._offset = plan.next_offset
        # np.clip's Python wrapper costs more than the filter; preallocated bounds are cheap.
        np.rint(out, out=out)
        np.maximum(out, plan.low, out=out)
        np.minimum(out, plan.high, out=out)
        return out.astype(np.int16)

    def flush(self) -> _Int16:
        """Drain the samples still inside the filter (the delay) and reset."""
        needed = math.ceil(self.delay_samples)
        tail = self.process(np.zeros(-(-needed * self.down // self.up), dtype=np.int16))
        self.reset()
        return tail[:needed]

    def reset(self) -> None:
        """Forget the stream: the next frame starts from silence."""
        self._buffer[:] = 0.0
        self._offset = 0

    def _resize(self, length: int) -> None:
        history = self._width - 1
        # `down` spare zeros let the last group of phases read past the frame end; the
        # outputs that would use them are cut off, so their value never matters.
        grown = np.zeros(history + length + self.down, dtype=np.float32)
        grown[:history] = self._buffer[:history]
        self._buffer = grown
        self._plans.clear()  # cached views point into the old buffer

    def _plan(self, length: int) -> _Plan:
        key = (self._offset, length)
        plan = self._plans.get(key)
        if plan is None:
            plan = _Plan.build(self._buffer, self._phases, self.down, *key)
            self._plans[key] = plan
        return plan


class _Plan:
    """One matrix product computing a frame: a strided view of the buffer times the branches.

    Outputs come in groups of `up`: group g starts `g * down` input samples after group 0 and
    uses the same branches in the same order, so each group is one row of the view and each
    output of the group one column of a coefficient matrix whose branch rows are shifted by
    where that output's window starts within the group's wider window.
    """

    __slots__ = ("coefficients", "count", "high", "low", "next_offset", "windows")

    def __init__(self, windows: _Float, coefficients: _Float, count: int, next_offset: int):
        self.windows = windows
        self.coefficients = coefficients
        self.count = count
        self.next_offset = next_offset
        self.low: _Float = np.full(count, -32768.0, dtype=np.float32)
        self.high: _Float = np.full(count, 32767.0, dtype=np.float32)

    @staticmethod
    def build(buffer: _Float, phases: _Float, down: int, offset: int, length: int) -> _Plan:
        up, width = phases.shape
        count = max(0, -(-(length * up - offset) // down))
        positions = [offset + k * down for k in range(up)]
        base = positions[0] // up
        shifts = [position // up - base for position in positions]
        span = width + max(shifts)
        coefficients = np.zeros((span, up), dtype=np.float32)
        for column, (position, shift) in enumerate(zip(positions, shifts, strict=True)):
            coefficients[shift : shift + width, column] = phases[position % up]
        groups = -(-count // up)
        if base + (groups - 1) * down + span > buffer.size:
            raise AssertionError("resampler plan would read past its buffer")
        item = buffer.itemsize
        windows = np.lib.stride_tricks.as_strided(
            buffer[base:],
            shape=(groups, span),
            strides=(down * item, item),
            writeable=False,
        )
        next_offset = offset + count * down - length * up
        return _Plan(windows, coefficients, count, next_offset)
