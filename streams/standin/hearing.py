"""Caller speech onset/end detection for the stand-in: webrtcvad plus onset/hang-over hysteresis."""

from __future__ import annotations

from enum import Enum

import webrtcvad

FRAME_MS = 20


class Heard(Enum):
    STARTED = "started"
    STOPPED = "stopped"


class Hearing:
    """Feed PCM16 in any chunk size; get STARTED after `onset_ms` of voice, STOPPED after `hangover_ms`.

    webrtcvad flags the first few frames of any stream as speech while it settles, so the
    first `warmup_frames` decisions are ignored.
    """

    def __init__(
        self,
        *,
        rate: int = 16000,
        aggressiveness: int = 2,
        onset_ms: int = 60,
        hangover_ms: int = 500,
        warmup_frames: int = 5,
    ) -> None:
        if rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"webrtcvad does not support {rate} Hz")
        self.rate = rate
        self._vad = webrtcvad.Vad(aggressiveness)
        self._frame_bytes = rate * FRAME_MS // 1000 * 2
        self._onset = max(1, onset_ms // FRAME_MS)
        self._hangover = max(1, hangover_ms // FRAME_MS)
        self._warmup = warmup_frames
        self._pending = b""
        self._run = 0
        self.speaking = False
        self.voiced_ms = 0  # voiced time in the current (or last) utterance

    def feed(self, pcm: bytes) -> list[Heard]:
        data = self._pending + pcm
        usable = len(data) - len(data) % self._frame_bytes
        self._pending = data[usable:]
        events = []
        for start in range(0, usable, self._frame_bytes):
            event = self._step(data[start : start + self._frame_bytes])
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> list[Heard]:
        """The stream paused (`audioStreamEnd`): close an open utterance."""
        self._pending, self._run = b"", 0
        if self.speaking:
            self.speaking = False
            return [Heard.STOPPED]
        return []

    def _step(self, frame: bytes) -> Heard | None:
        voiced = bool(self._vad.is_speech(frame, self.rate))
        if self._warmup > 0:
            self._warmup -= 1
            voiced = False
        if self.speaking:
            self.voiced_ms += FRAME_MS
        if voiced == self.speaking:
            self._run = 0
            return None
        self._run += 1
        if not self.speaking and self._run >= self._onset:
            self.speaking, self._run, self.voiced_ms = True, 0, self._onset * FRAME_MS
            return Heard.STARTED
        if self.speaking and self._run >= self._hangover:
            self.speaking, self._run = False, 0
            self.voiced_ms -= self._hangover * FRAME_MS
            return Heard.STOPPED
        return None
