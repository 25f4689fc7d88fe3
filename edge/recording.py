"""Call recording: caller and what the caller heard, as a stereo 8 kHz PCM16 WAV (left / right)."""

from __future__ import annotations

import io
import re
import wave

import fsspec
import numpy as np

RATE = 8000
_BYTES_PER_MS = RATE * 2 // 1000


MAX_AHEAD_MS = 5000
"""How far caller audio may claim to be ahead of the call's clock: Twilio's timestamps follow it
closely, and one absurd ``timestamp`` must not make the track allocate hours of silence."""

_FRAME_MS = 20


class CallRecording:
    """Two growing 8 kHz PCM16 tracks; audio is placed at its stream time, silence fills the rest.

    Both tracks grow at most with the call's own clock (plus ``MAX_AHEAD_MS``) or with the audio
    actually received, whatever the timestamps say: memory is bounded by the call's length.
    """

    def __init__(self) -> None:
        self._caller = bytearray()
        self._heard = bytearray()
        self._heard_ms: int | None = None

    def add_caller(self, stream_ms: int, pcm8k: bytes, *, now_ms: int) -> bool:
        """Place caller audio at ``stream_ms``; False when that is too far ahead of ``now_ms``.

        Audio with an implausible time goes right after the caller audio so far: kept, and
        without the silence the timestamp asked for.
        """
        end_ms = len(self._caller) // _BYTES_PER_MS
        if stream_ms > end_ms and stream_ms > now_ms + MAX_AHEAD_MS:
            _place(self._caller, end_ms, pcm8k)
            return False
        _place(self._caller, stream_ms, pcm8k)
        return True

    def add_heard(self, stream_ms: int, pcm8k: bytes) -> None:
        _place(self._heard, stream_ms, pcm8k)

    def add_heard_frame(self, now_ms: int, pcm8k: bytes) -> None:
        """One 20 ms agent frame sent at ``now_ms``: right after the previous one, unless behind.

        Frames are paced at 20 ms, but each is sent a little early or late: placed at the send
        time they would leave gaps or overwrite each other. The cursor follows the clock only
        when it falls behind by more than a frame (an idle gap) or after ``reanchor_heard``.
        """
        at = self._heard_ms
        if at is None or now_ms - at > _FRAME_MS:
            at = now_ms
        _place(self._heard, at, pcm8k)
        self._heard_ms = at + len(pcm8k) // _BYTES_PER_MS

    def reanchor_heard(self) -> None:
        """Playback was cleared: the next frame is placed at its send time (Twilio dropped the rest)."""
        self._heard_ms = None

    @property
    def duration_ms(self) -> int:
        return max(len(self._caller), len(self._heard)) // _BYTES_PER_MS

    def wav_bytes(self) -> tuple[bytes, int]:
        """The stereo WAV file and its duration in ms."""
        length = max(len(self._caller), len(self._heard)) // 2
        stereo = np.zeros((length, 2), dtype="<i2")
        left = np.frombuffer(bytes(self._caller), dtype="<i2")
        right = np.frombuffer(bytes(self._heard), dtype="<i2")
        stereo[: left.size, 0] = left
        stereo[: right.size, 1] = right
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(stereo.tobytes())
        return out.getvalue(), length * 1000 // RATE


SAFE_NAME = re.compile(r"[A-Za-z0-9._:-]{1,160}")
"""What a recording's file name may hold: no separator, so it stays under its target."""


def store_recording(recording: CallRecording, target: str, name: str) -> tuple[str, int]:
    """Write the WAV as ``name`` under ``target``: a directory or any fsspec URL (s3://, gs://, ...).

    Returns the stored object's URI and the duration in ms. Blocking: run it in a thread.
    Raises ValueError for a name that is not a plain file name (it would land outside target).
    """
    if not SAFE_NAME.fullmatch(name) or name.startswith("."):
        raise ValueError(f"not a plain file name for a recording: {name[:80]!r}")
    data, duration_ms = recording.wav_bytes()
    fs, root = fsspec.core.url_to_fs(target)
    root = root.rstrip("/")
    fs.makedirs(root, exist_ok=True)  # object stores have no directories; local ones need them
    path = f"{root}/{name}"
    with fs.open(path, "wb") as out:
        out.write(data)
    return str(fs.unstrip_protocol(path)), duration_ms


def _place(track: bytearray, stream_ms: int, pcm: bytes) -> None:
    start = max(0, stream_ms) * _BYTES_PER_MS
    if start > len(track):
        track.extend(bytes(start - len(track)))
    track[start : start + len(pcm)] = pcm
