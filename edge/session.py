"""One call's media state: caller audio to 16 kHz frames and VAD facts, sequence gaps, barge-in.

The functional core of the media socket: it takes parsed frames and the time as inputs and
returns what happened; the socket handler (``edge.call``) does all sending and publishing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge.audio import mulaw
from edge.audio.framing import FRAME_MS, MULAW_8K_FRAME_BYTES, FrameChunker
from edge.audio.resampler import StreamingResampler
from edge.audio.vad import SpeechDetector, SpeechEvent
from edge.playback import Playback
from edge.protocol import Media
from schemas import bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Audio policy of a session (from EdgeSettings)."""

    vad_aggressiveness: int = 2
    vad_onset_frames: int = 3
    vad_hangover_frames: int = 15
    barge_in_min_speech_ms: int = 120
    caller_buffer_frames: int = 250
    playing_tail_ms: int = 100
    """After the last agent frame left, the caller may still be hearing it this long."""


@dataclass(slots=True)
class Inbound:
    """What one Twilio media frame caused."""

    bridge_frames: int = 0
    speech: list[SpeechEvent] = field(default_factory=list)
    barge_in: bool = False


class CallerBuffer:
    """Bounded FIFO of encoded bridge frames; when full the oldest is dropped and counted."""

    def __init__(self, max_frames: int) -> None:
        self._frames: deque[bytes] = deque(maxlen=max(1, max_frames))
        self.dropped = 0

    def push(self, frame: bytes) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)

    def pop(self) -> bytes | None:
        return self._frames.popleft() if self._frames else None

    def push_front(self, frame: bytes) -> None:
        """Put back a frame a failed send did not deliver (it stays first in line)."""
        if len(self._frames) < (self._frames.maxlen or 0):
            self._frames.appendleft(frame)
        else:
            self.dropped += 1

    def __len__(self) -> int:
        return len(self._frames)


MAX_SEQUENCE_JUMP = 500
"""Frames a sequence number may skip (10 s of audio): Twilio streams over TCP and skips none, so
a larger jump is a bogus number, which must not make every later real frame look late."""

LATE = "late_frame"
JUMP = "sequence_jump"


class SequenceTracker:
    """Twilio numbers every frame it sends; count the numbers we never saw and late arrivals."""

    def __init__(self) -> None:
        self.expected: int | None = None
        self.gaps = 0
        self.late = 0
        self.jumps = 0
        self._jumped_to: int | None = None

    def observe(self, number: int | None) -> str | None:
        """Record ``number``; the bad-input kind (``LATE`` or ``JUMP``) when the frame is dropped."""
        expected = self.expected
        if number is None or expected is None:
            if number is not None:
                self.expected = number + 1
            return None
        if number < expected:
            self.late += 1
            return LATE
        if number - expected > MAX_SEQUENCE_JUMP:
            # One bogus number is dropped; two in a row that agree are a real (if odd) resync.
            resync = self._jumped_to is not None and number == self._jumped_to + 1
            self._jumped_to = number
            if not resync:
                self.jumps += 1
                return JUMP
        self._jumped_to = None
        self.gaps += number - expected
        self.expected = number + 1
        return None


class MediaSession:
    """Per-call media core: decode, resample, VAD, caller buffer, playback queue, barge-in."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.sequence = SequenceTracker()
        self.caller = CallerBuffer(config.caller_buffer_frames)
        self.playback = Playback()
        self._chunker = FrameChunker(MULAW_8K_FRAME_BYTES)
        self._upsample = StreamingResampler.for_rates(8000, bridge.CALLER_RATE)
        self._vad = SpeechDetector(
            config.vad_aggressiveness,
            onset_frames=config.vad_onset_frames,
            hangover_frames=config.vad_hangover_frames,
        )
        self._bridge_seq = 0
        self._barged_at: int | None = None  # speech onset already used for a barge-in
        self.last_agent_frame_ms: float | None = None
        self.frames_received = 0
        self.last_stream_ms = 0

    @property
    def speaking(self) -> bool:
        return self._vad.speaking

    def agent_playing(self, now_ms: float) -> bool:
        """Agent audio is queued, or its last frame left less than the tail ago."""
        if self.playback.audio_queued:
            return True
        last = self.last_agent_frame_ms
        return last is not None and now_ms - last < self.config.playing_tail_ms

    def on_media(self, media: Media, *, now_ms: float, pcm8k_sink: list[bytes] | None = None) -> Inbound:
        """Process one inbound media frame (already sequence-checked)."""
        result = Inbound()
        self.frames_received += 1
        frames = self._chunker.push(media.payload)
        for index, frame in enumerate(frames):
            stream_ms = media.timestamp_ms + index * FRAME_MS
            pcm8k = mulaw.decode(frame)
            if pcm8k_sink is not None:
                pcm8k_sink.append(pcm8k.tobytes())
            pcm16k = self._upsample.process(pcm8k).tobytes()  # one copy for the bridge and the VAD
            self.caller.push(bridge.encode_caller_audio(self._bridge_seq, stream_ms, pcm16k))
            self._bridge_seq += 1
            result.bridge_frames += 1
            event = self._vad.process(pcm16k, stream_ms)
            if event is not None:
                result.speech.append(event)
            self.last_stream_ms = stream_ms + FRAME_MS
            if self._should_barge_in(stream_ms, now_ms):
                result.barge_in = True
        return result

    def _should_barge_in(self, stream_ms: int, now_ms: float) -> bool:
        if not self._vad.speaking:
            self._barged_at = None
            return False
        onset = self._vad.state.started_ms
        if self._barged_at == onset:
            return False
        if stream_ms + FRAME_MS - onset < self.config.barge_in_min_speech_ms:
            return False
        if not self.agent_playing(now_ms):
            return False
        self._barged_at = onset
        return True

    def finish(self) -> SpeechEvent | None:
        """End of stream: close an open utterance."""
        return self._vad.finish(self.last_stream_ms)

    def buffered_ms(self) -> int:
        return len(self.caller) * FRAME_MS
