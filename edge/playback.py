"""The agent playback queue: 24 kHz PCM16 in, 160-byte μ-law frames and marks out, in order.

Pure: the shell pops one item per 20 ms tick and sends it to Twilio; ``clear`` drops whatever
has not been sent. Each audio frame remembers its utterance so ``played_ms`` is exact.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edge.audio import mulaw
from edge.audio.framing import FRAME_MS, MULAW_8K_FRAME_BYTES, FrameChunker
from edge.audio.resampler import StreamingResampler

AGENT_RATE = 24000
PHONE_RATE = 8000
_SILENCE = bytes([mulaw.SILENCE_BYTE])


class AudioItem(NamedTuple):
    """One 20 ms μ-law frame of an utterance.

    A tuple, not a dataclass: a tuple of bytes and str is dropped from the garbage collector's
    lists at its first pass, and a second of queued audio per call is ~10,000 such items at
    200 calls, which every full collection would otherwise walk (full collections of up to
    15 ms were measured on the edge at 200 calls).
    """

    mulaw: bytes
    utterance_id: str


@dataclass(frozen=True, slots=True)
class MarkItem:
    """A mark to pass to Twilio once every frame before it has been sent."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Cleared:
    """What a clear discarded, for AgentInterrupted."""

    utterance_id: str
    played_ms: int
    total_ms: int
    frames_dropped: int
    marks_dropped: tuple[str, ...]


class Playback:
    """Resample, encode and frame agent audio; hand it out one frame at a time."""

    def __init__(self) -> None:
        self._resampler = StreamingResampler.for_rates(AGENT_RATE, PHONE_RATE)
        self._chunker = FrameChunker(MULAW_8K_FRAME_BYTES)
        self._queue: deque[AudioItem | MarkItem] = deque()
        self._audio_queued = 0
        self._utterance = ""
        self._auto_ids = 0
        self._played: dict[str, int] = {}
        self._generated: dict[str, int] = {}
        self.frames_sent = 0
        self.dropped_after_clear = 0
        """Audio chunks that arrived for an utterance already cleared (in flight at the clear)."""
        self._dirty = False  # audio went into the resampler since the last flush
        self._begun = False  # the current utterance was named by begin_utterance
        self._muted = False  # cleared; audio is dropped until the next utterance begins

    @property
    def utterance_id(self) -> str:
        """The utterance new audio belongs to ("" until the first audio)."""
        return self._utterance

    @property
    def muted(self) -> bool:
        """Audio is being dropped: it belongs to an utterance a clear cut."""
        return self._muted

    @property
    def audio_queued(self) -> int:
        """20 ms frames waiting to be sent."""
        return self._audio_queued

    def __len__(self) -> int:
        return len(self._queue)

    def begin_utterance(self, utterance_id: str) -> None:
        """Following audio belongs to ``utterance_id``."""
        self._flush_partial()
        self._utterance = utterance_id
        self._begun = True
        self._muted = False

    def enqueue(self, pcm24: bytes) -> int:
        """Append agent audio (PCM16 24 kHz); returns how many whole frames became ready."""
        if self._muted:
            self.dropped_after_clear += 1
            return 0
        if not self._utterance:
            self._begun = False
            self._auto_ids += 1
            self._utterance = f"edge-utterance-{self._auto_ids}"
        self._dirty = True
        if len(pcm24) % 2:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm24)}")
        samples = np.frombuffer(pcm24, dtype="<i2")
        encoded = mulaw.encode(self._resampler.process(samples))
        frames = self._chunker.push(encoded)
        self._append_frames(frames)
        return len(frames)

    def mark(self, name: str) -> None:
        """Queue a mark after all audio so far (the partial last frame is padded with silence)."""
        self._flush_partial()
        self._queue.append(MarkItem(name))
        # An utterance ends at its mark; the next audio without an explicit id gets a new one.
        self._utterance = ""

    def pop(self) -> AudioItem | MarkItem | None:
        """The next thing to send, or None when idle."""
        if not self._queue:
            return None
        item = self._queue.popleft()
        if isinstance(item, AudioItem):
            self._audio_queued -= 1
            self.frames_sent += 1
            self._played[item.utterance_id] = self._played.get(item.utterance_id, 0) + 1
        return item

    def clear(self, *, keep_newer: bool = False) -> Cleared:
        """Drop what has not been sent, or with ``keep_newer`` only the utterance being heard.

        The cleared utterance is named once: a second clear before new audio names none, so an
        interruption seen by both the edge's VAD and the model is recorded once. A sender that
        names its utterances (``begin_utterance``) may still have audio of the cleared one in
        flight; that is dropped until it begins the next.

        ``keep_newer`` is for the edge's own barge-in: when the caller is hearing an older
        utterance's tail, only that tail (and its mark) is dropped, and the newer one plays on
        from its start, so the sender, who is told about the older one, has not been silenced,
        nor cut mid-sentence, without knowing (the model, hearing the caller too, interrupts it
        if it should). A sender's own clear drops everything it sent, the utterance it is still
        sending included.
        """
        utterance = self._current_played_utterance()
        still_arriving = utterance == self._utterance
        newer = keep_newer and bool(self._utterance) and not still_arriving
        dropped = self._drop_until_newer(utterance) if newer else self._drop_all()
        cleared = Cleared(
            utterance_id=utterance,
            played_ms=self._played.get(utterance, 0) * FRAME_MS,
            total_ms=self._generated.get(utterance, 0) * FRAME_MS,
            frames_dropped=sum(1 for item in dropped if isinstance(item, AudioItem)),
            marks_dropped=tuple(item.name for item in dropped if isinstance(item, MarkItem)),
        )
        self._audio_queued -= cleared.frames_dropped
        cut_arriving = still_arriving or (bool(self._utterance) and not keep_newer)
        if not newer and (cut_arriving or not self._begun):
            # The utterance still arriving was cut: drop the rest of it when it comes.
            self._muted = self._begun
            self._utterance = ""
        return cleared

    def _drop_all(self) -> list[AudioItem | MarkItem]:
        dropped = list(self._queue)
        self._queue.clear()
        self._chunker.reset()
        self._resampler.reset()
        self._dirty = False
        return dropped

    def _drop_until_newer(self, older: str) -> list[AudioItem | MarkItem]:
        """Drop the older utterance's queued frames and the marks among them, up to the newer
        utterance's first frame; the resampler and framer carry on with the newer one."""
        dropped: list[AudioItem | MarkItem] = []
        while self._queue:
            item = self._queue[0]
            if isinstance(item, AudioItem) and item.utterance_id != older:
                break
            dropped.append(self._queue.popleft())
        return dropped

    def played_ms(self, utterance_id: str) -> int:
        """How much of an utterance has been sent to Twilio so far."""
        return self._played.get(utterance_id, 0) * FRAME_MS

    def _current_played_utterance(self) -> str:
        for item in self._queue:
            if isinstance(item, AudioItem):
                return item.utterance_id
        return self._utterance

    def _flush_partial(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        tail = self._resampler.flush()
        frames = self._chunker.push(mulaw.encode(tail)) if tail.size else []
        last = self._chunker.flush(pad=_SILENCE)
        if last is not None:
            frames.append(last)
        self._append_frames(frames)

    def _append_frames(self, frames: list[bytes]) -> None:
        if not frames:
            return
        utterance = self._utterance
        self._queue.extend(AudioItem(frame, utterance) for frame in frames)
        self._audio_queued += len(frames)
        self._generated[utterance] = self._generated.get(utterance, 0) + len(frames)
