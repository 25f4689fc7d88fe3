"""Streaming polyphase FIR resamplers for 20 ms int16 frames, with state carried across calls."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import signal

_Float = npt.NDArray[np.float32]
_Int16 = npt.NDArray[np.int16]

# Block matrices depend only on the filter, the block size and the phase, so every stream of
# one conversion shares them (200 calls' playback would otherwise hold 200 identical copies of
# ~150 KB each). Kept: the latest few (filter, block, phase) triples; up to ~1 MB each.
_BLOCK_MATRICES_KEPT = 16
_block_matrices: dict[tuple[bytes, int, int, int], tuple[_Float, _Float]] = {}


def design_lowpass(
    up: int, down: int, *, passband: float = 0.85, stopband: float = 1.0, stopband_db: float = 65.0
) -> npt.NDArray[np.float64]:
    """Design the prototype low-pass at `up` times the input rate.

    `passband` is the pass edge and `stopband` the stop edge, as fractions of the lower of the
    two Nyquist frequencies (0.85 of 4 kHz is the 3.4 kHz telephone band). A stop edge at that
    Nyquist (1.0) lets nothing above it alias back in when decimating, nor image when
    interpolating; ``phone_band_stopband`` is the cheaper choice for interpolating band-limited
    input.
    """
    if not 0.0 < passband < 1.0:
        raise ValueError(f"passband must be in (0, 1), got {passband}")
    if not passband < stopband < 2.0 - passband + 1e-9:
        raise ValueError(f"stopband must be in ({passband}, {2.0 - passband}], got {stopband}")
    edge = 1.0 / max(up, down)  # lower Nyquist, normalised to the upsampled Nyquist
    numtaps, beta = signal.kaiserord(stopband_db, edge * (stopband - passband))
    # An odd length whose half-length divides by `down` keeps the delay a whole output sample.
    step = 2 * down
    numtaps = ((numtaps - 1 + step - 1) // step) * step + 1
    cutoff = edge * (stopband + passband) / 2.0
    taps = signal.firwin(numtaps, cutoff, window=("kaiser", beta))
    return np.asarray(taps * up, dtype=np.float64)  # gain `up` restores the level of stuffed zeros


def phone_band_stopband(up: int, down: int, passband: float = 0.85) -> float:
    """The stop edge an interpolator needs when its input holds nothing above the pass edge.

    Upsampling 8 kHz telephone audio (a codec band that ends at 3.4 kHz) creates images at
    8 kHz - 3.4 kHz = 4.6 kHz and up, so the stopband may start there instead of at 4 kHz:
    twice the transition band, half the taps (55 instead of 107 for 8k->16k, a half-band
    filter) and half the delay. Decimators keep the stop edge at the Nyquist (1.0): what lies
    above it would alias into the band.
    """
    return 2.0 - passband if down == 1 and up > 1 else 1.0


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
        if taps is None:
            taps = design_lowpass(self.up, self.down, stopband=phone_band_stopband(self.up, self.down))
        prototype = np.asarray(taps, dtype=np.float64)
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
        self._lead = 0  # zeros before the history, so that a block plan sees whole blocks
        self._length = -1  # the frame length the buffer is laid out for
        self._block = 0  # a block plan's block size for that length (0: strided plans)
        self._plans: dict[tuple[int, int], _Plan | _BlockPlan] = {}
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
        if length != self._length:
            self._resize(length)
        buffer, lead = self._buffer, self._lead
        start = lead + self._width - 1
        buffer[start : start + length] = frame
        plan = self._plan(length)
        out = plan.compute()
        buffer[lead:start] = buffer[lead + length : start + length]
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
        block = _block_size(length, history, self.up, self.down)
        lead = block - history if block else 0
        # `down` spare zeros let the last group of phases read past the frame end; the
        # outputs that would use them are cut off, so their value never matters.
        grown = np.zeros(lead + history + length + self.down, dtype=np.float32)
        grown[lead : lead + history] = self._buffer[self._lead : self._lead + history]
        self._buffer, self._lead, self._length, self._block = grown, lead, length, block
        self._plans.clear()  # cached views point into the old buffer

    def _plan(self, length: int) -> _Plan | _BlockPlan:
        key = (self._offset, length)
        plan = self._plans.get(key)
        if plan is None:
            if self._block:
                matrices = _shared_block_matrices(self._phases, self.down, self._block, self._offset)
                plan = _BlockPlan.build(self._buffer, matrices, length, self._offset)
            else:
                plan = _Plan.build(self._buffer[self._lead :], self._phases, self.down, *key)
            self._plans[key] = plan
        return plan


def _block_size(length: int, history: int, up: int, down: int) -> int:
    """The smallest block of at least `history` samples that divides `length` (0: none small).

    A block must also span a whole number of outputs (``size * up`` divisible by `down`), so
    that every block starts at the frame's output phase and one pair of matrices serves them all.
    """
    for size in range(max(history, 1), min(length, 4 * history + 64) + 1):
        if length % size == 0 and size * up % down == 0:
            return size
    return 0


class _Plan:
    """One matrix product computing a frame: a strided view of the buffer times the branches.

    Outputs come in groups of `up`: group g starts `g * down` input samples after group 0 and
    uses the same branches in the same order, so each group is one row of the view and each
    output of the group one column of a coefficient matrix whose branch rows are shifted by
    where that output's window starts within the group's wider window.
    """

    __slots__ = ("coefficients", "count", "high", "low", "next_offset", "windows")

    def compute(self) -> _Float:
        # np.dot copies the strided windows first (BLAS cannot read overlapping rows).
        out: _Float = np.dot(self.windows, self.coefficients).ravel()[: self.count]
        return out

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


class _BlockPlan:
    """A frame as two products of plain blocks of the buffer.

    The frame is cut into blocks of `block` input samples, a block at least as long as the
    filter's history, so the outputs of block j depend on input blocks j-1 and j only:
    ``previous @ tail + current @ head``. Both operands are reshapes that BLAS reads in place,
    where ``_Plan``'s overlapping windows are copied on every call (measured: 3.1 µs for the
    strided product of a 20 ms 8k->16k frame, 1.4 µs for these two; for 24k->8k, whose 163
    taps make that copy 104 KB a frame, 9.7 µs against 6.3 µs, and 300 µs against 90-110 µs
    for a second of agent audio in one piece).
    """

    __slots__ = (
        "count",
        "current",
        "flat",
        "head",
        "high",
        "low",
        "next_offset",
        "out",
        "previous",
        "scratch",
        "tail",
    )

    def __init__(self, previous: _Float, current: _Float, head: _Float, tail: _Float, offset: int) -> None:
        self.previous, self.current, self.head, self.tail = previous, current, head, tail
        self.out: _Float = np.zeros((current.shape[0], head.shape[1]), dtype=np.float32)
        self.scratch: _Float = np.zeros_like(self.out)
        self.flat: _Float = self.out.reshape(-1)
        self.count = self.flat.size
        # Each block holds whole groups of outputs, so the frame ends at the phase it began.
        self.next_offset = offset
        self.low: _Float = np.full(self.count, -32768.0, dtype=np.float32)
        self.high: _Float = np.full(self.count, 32767.0, dtype=np.float32)

    def compute(self) -> _Float:
        np.dot(self.current, self.head, out=self.out)
        np.dot(self.previous, self.tail, out=self.scratch)
        np.add(self.out, self.scratch, out=self.out)
        return self.flat

    @staticmethod
    def build(buffer: _Float, matrices: tuple[_Float, _Float], length: int, offset: int) -> _BlockPlan:
        head, tail = matrices
        block = head.shape[0]
        blocks = length // block
        # buffer[:block] is the lead of zeros and the history; the frame follows it.
        previous = buffer[: blocks * block].reshape(blocks, block)
        current = buffer[block : block + blocks * block].reshape(blocks, block)
        return _BlockPlan(previous, current, head, tail, offset)


def _shared_block_matrices(phases: _Float, down: int, block: int, offset: int) -> tuple[_Float, _Float]:
    """The read-only (head, tail) pair of a filter, block size and phase, built once (~150 µs), shared."""
    key = (phases.tobytes(), down, block, offset)
    matrices = _block_matrices.get(key)
    if matrices is None:
        if len(_block_matrices) >= _BLOCK_MATRICES_KEPT:
            del _block_matrices[next(iter(_block_matrices))]
        head, tail = _design_block_matrices(phases, down, block, offset)
        head.flags.writeable = tail.flags.writeable = False
        matrices = _block_matrices[key] = (head, tail)
    return matrices


def _design_block_matrices(phases: _Float, down: int, block: int, offset: int) -> tuple[_Float, _Float]:
    """The (head, tail) pair of a block size: what one block's outputs take from each block.

    Output j of a block sits at up-rate position offset + j * down (offset < down: the phase
    the stream is at), that is after input i with branch p; it is
    sum_w phases[p, w] * x[i - history + w], with x indexed from the block's start: inputs
    before it come from the previous block.
    """
    up, width = phases.shape
    history, outputs = width - 1, block * up // down
    j, w = np.meshgrid(np.arange(outputs), np.arange(width), indexing="ij")
    i, p = np.divmod(offset + j * down, up)
    source, value = i - history + w, phases[p, w]
    inside = source >= 0
    head = np.zeros((block, outputs), dtype=np.float32)
    tail = np.zeros((block, outputs), dtype=np.float32)
    head[source[inside], j[inside]] = value[inside]
    tail[source[~inside] + block, j[~inside]] = value[~inside]
    return head, tail
