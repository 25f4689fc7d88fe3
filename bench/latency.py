"""The pipeline's added latency, from the simulator's frame times and the stand-in's audio times.

Shared by bench_pipeline.py and bench_system.py. Both clocks are CLOCK_MONOTONIC on one machine:
the simulator stamps each Twilio frame it sends and each one it hears; the stand-in, run with
`--timings`, stamps each caller audio chunk it receives and each model audio chunk it sends.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PCM_FRAME_BYTES = 640  # 20 ms at 16 kHz, PCM16: what the edge bridges per Twilio frame


@dataclass
class Latencies:
    """Per direction, in ms, with what could not be matched (reported, never hidden)."""

    uplink: list[float] = field(default_factory=list)
    uplink_in_window: list[float] = field(default_factory=list)
    downlink: list[float] = field(default_factory=list)
    uplink_chunks_unmatched: int = 0
    uplink_chunks_of_several_frames: int = 0
    answers_unmatched: int = 0

    def add_call(
        self,
        sent_at: Sequence[float],
        heard_at: Sequence[float],
        timing: dict[str, Any],
        window: tuple[float, float] | None = None,
    ) -> None:
        """One call: its frames sent and heard, and the stand-in's timings of its session."""
        if not heard_at:
            return
        self._uplink(sent_at, heard_at[0], timing["audio_in"], window)
        firsts = [at for at, _utterance, chunk in timing["audio_out"] if chunk == 0]
        self._downlink(heard_at, firsts[1:])  # not the greeting: ready before the stream (pre-warm)

    def _uplink(
        self,
        sent_at: Sequence[float],
        established: float,
        audio_in: Sequence[Sequence[float]],
        window: tuple[float, float] | None,
    ) -> None:
        # The k-th 640 bytes the stand-in received are the k-th frame sent: the edge bridges
        # frames 1:1 and the worker sends one realtime input per bridge frame (a worker that
        # fell behind sends several frames as one chunk: each of them arrived then). Frames sent
        # before the caller first heard the agent waited in the edge's buffer for the bridge.
        offset = 0
        for at, size in audio_in:
            first = offset // PCM_FRAME_BYTES
            offset += int(size)
            frames = int(size) // PCM_FRAME_BYTES
            if size % PCM_FRAME_BYTES or first + frames > len(sent_at):
                self.uplink_chunks_unmatched += 1
                continue
            self.uplink_chunks_of_several_frames += frames > 1
            for k in range(first, first + frames):
                sent = sent_at[k]
                if sent < established:
                    continue
                latency = (at - sent) * 1000
                self.uplink.append(latency)
                if window is not None and window[0] <= sent <= window[1]:
                    self.uplink_in_window.append(latency)

    def _downlink(self, heard_at: Sequence[float], answers_left_at: Sequence[float]) -> None:
        # The first chunk of each answer -> its first frame at Twilio. An answer whose first
        # frame cannot be told apart (the caller was still hearing the previous one, or nothing
        # came within 2 s) is counted as unmatched.
        for at in answers_left_at:
            i = bisect.bisect_left(heard_at, at)
            previous = heard_at[i - 1] if i > 0 else 0.0
            if i >= len(heard_at) or heard_at[i] - at > 2.0 or at - previous < 0.1:
                self.answers_unmatched += 1
                continue
            self.downlink.append((heard_at[i] - at) * 1000)


def stats(values: Any, digits: int = 2) -> dict[str, float | int]:
    """n, p50, p90, p99 and max of the values that are there (None is left out)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {"n": 0}
    return {
        "n": int(arr.size),
        "p50": round(float(np.percentile(arr, 50)), digits),
        "p90": round(float(np.percentile(arr, 90)), digits),
        "p99": round(float(np.percentile(arr, 99)), digits),
        "max": round(float(arr.max()), digits),
    }
