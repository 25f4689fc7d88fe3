"""The media session core: framing, sequence gaps, the caller ring buffer, playback and barge-in."""

from __future__ import annotations

import numpy as np
import pytest

from edge.audio import mulaw
from edge.audio.speech import synthesize, to_rate
from edge.audio.vad import SpeechStarted, SpeechStopped
from edge.playback import AudioItem, MarkItem, Playback
from edge.protocol import Media
from edge.session import (
    JUMP,
    LATE,
    MAX_SEQUENCE_JUMP,
    CallerBuffer,
    MediaSession,
    SequenceTracker,
    SessionConfig,
)
from schemas import bridge


def _media(payload: bytes, timestamp_ms: int, seq: int = 0) -> Media:
    return Media(
        sequence_number=seq,
        stream_sid="MZ",
        track="inbound",
        chunk=None,
        timestamp_ms=timestamp_ms,
        payload=payload,
    )


def _speech8k() -> bytes:
    samples, rate = synthesize("Hello, can you hear me? I am talking over you now.")
    return mulaw.encode(to_rate(samples, rate, 8000))


def test_sequence_tracker_counts_gaps_and_drops_late_frames() -> None:
    tracker = SequenceTracker()
    assert [tracker.observe(n) for n in (1, 2, 5, 4, 6, 6)] == [None, None, None, LATE, None, LATE]
    assert (tracker.gaps, tracker.late) == (2, 2)


def test_one_bogus_sequence_number_is_dropped_and_the_real_ones_go_on() -> None:
    tracker = SequenceTracker()
    assert tracker.observe(1) is None
    assert tracker.observe(10**12) == JUMP
    assert [tracker.observe(n) for n in (2, 3, 3 + MAX_SEQUENCE_JUMP + 1)] == [None, None, None]
    assert (tracker.gaps, tracker.late, tracker.jumps) == (MAX_SEQUENCE_JUMP, 0, 1)


def test_two_agreeing_numbers_after_a_jump_are_a_resync() -> None:
    tracker = SequenceTracker()
    assert [tracker.observe(n) for n in (1, 5000, 5001, 5002)] == [None, JUMP, None, None]
    assert (tracker.expected, tracker.gaps, tracker.jumps) == (5003, 4999, 1)


def test_finish_closes_the_utterance_of_a_caller_still_speaking() -> None:
    session = MediaSession(SessionConfig())
    speech = _speech8k()
    half = len(speech) // 2 // 160 * 160
    for index in range(0, half, 160):
        session.on_media(_media(speech[index : index + 160], index // 8), now_ms=0.0)
    assert session.speaking
    stopped = session.finish()
    assert isinstance(stopped, SpeechStopped)
    assert stopped.stream_ms <= half // 8


def test_caller_buffer_drops_the_oldest_and_counts() -> None:
    buffer = CallerBuffer(3)
    for frame in (b"a", b"b", b"c", b"d", b"e"):
        buffer.push(frame)
    assert buffer.dropped == 2
    assert [buffer.pop(), buffer.pop(), buffer.pop(), buffer.pop()] == [b"c", b"d", b"e", None]


def test_every_160_byte_frame_becomes_one_640_byte_bridge_frame() -> None:
    session = MediaSession(SessionConfig())
    payload = _speech8k()[:1600]
    for index in range(0, 1600, 240):  # odd-sized chunks: framing carries the remainder
        session.on_media(_media(payload[index : index + 240], index // 8), now_ms=0.0)
    frames = [bridge.decode(session.caller.pop() or b"") for _ in range(len(session.caller))]
    assert len(frames) == 10
    assert all(isinstance(f, bridge.CallerAudio) and len(f.pcm) == 640 for f in frames)
    assert [f.seq for f in frames if isinstance(f, bridge.CallerAudio)] == list(range(10))


def test_speech_over_playing_agent_triggers_one_barge_in() -> None:
    session = MediaSession(SessionConfig(barge_in_min_speech_ms=120))
    session.playback.enqueue(np.zeros(24000, dtype=np.int16).tobytes())
    speech = bytes([0xFF]) * 1600 + _speech8k()
    barge_ins, started = 0, []
    for index in range(0, len(speech) - 160, 160):
        result = session.on_media(_media(speech[index : index + 160], index // 8), now_ms=float(index // 8))
        barge_ins += result.barge_in
        started += [e for e in result.speech if isinstance(e, SpeechStarted)]
    assert started
    assert barge_ins == 1


def test_speech_without_agent_audio_is_not_a_barge_in() -> None:
    session = MediaSession(SessionConfig())
    speech = _speech8k()
    results = [
        session.on_media(_media(speech[i : i + 160], i // 8), now_ms=1e9)
        for i in range(0, len(speech) - 160, 160)
    ]
    assert not any(r.barge_in for r in results)
    assert any(r.speech for r in results)


def test_playback_frames_marks_and_clear() -> None:
    playback = Playback()
    playback.begin_utterance("u1")
    ready = playback.enqueue(np.zeros(2400, dtype=np.int16).tobytes())  # 100 ms
    assert ready == 5
    playback.mark("m1")
    items = [playback.pop() for _ in range(len(playback))]
    audio = [i for i in items if isinstance(i, AudioItem)]
    assert all(len(i.mulaw) == 160 for i in audio)
    assert items[-1] == MarkItem("m1")
    assert len(audio) == 6  # five frames and the filter tail padded with silence
    playback.begin_utterance("u2")
    playback.enqueue(np.ones(24000, dtype=np.int16).tobytes())
    playback.mark("m2")
    for _ in range(10):
        playback.pop()
    cleared = playback.clear()
    assert (cleared.utterance_id, cleared.played_ms) == ("u2", 200)
    assert cleared.total_ms >= 1000
    assert cleared.marks_dropped == ("m2",)
    assert playback.pop() is None
    assert playback.audio_queued == 0


def test_a_clear_names_an_utterance_played_just_in_time_once() -> None:
    # A model talking in real time: every frame is sent as soon as it arrives, so at the
    # interruption nothing is queued, yet the caller was cut off mid-utterance.
    playback = Playback()
    playback.begin_utterance("u1")
    playback.enqueue(np.ones(2400, dtype=np.int16).tobytes())
    while playback.pop() is not None:
        pass
    first = playback.clear()
    assert (first.utterance_id, first.frames_dropped, first.played_ms) == ("u1", 0, 100)
    assert playback.clear().utterance_id == ""  # the edge's VAD and the model: one interruption


def test_audio_in_flight_for_a_cleared_utterance_is_dropped_until_the_next_begins() -> None:
    playback = Playback()
    playback.begin_utterance("u1")
    playback.enqueue(np.ones(2400, dtype=np.int16).tobytes())
    playback.clear()
    assert playback.enqueue(np.ones(2400, dtype=np.int16).tobytes()) == 0
    assert (playback.audio_queued, playback.dropped_after_clear) == (0, 1)
    assert playback.clear().utterance_id == ""
    playback.begin_utterance("u2")
    assert playback.enqueue(np.ones(2400, dtype=np.int16).tobytes()) == 5
    assert playback.clear().utterance_id == "u2"


def _u1_tail_then_u2() -> Playback:
    """u1's audio and its mark still queued, and u2 begun and queued after them."""
    playback = Playback()
    playback.begin_utterance("u1")
    playback.enqueue(np.ones(2400, dtype=np.int16).tobytes())
    playback.mark("u1")
    playback.begin_utterance("u2")
    playback.enqueue(np.ones(2400, dtype=np.int16).tobytes())
    return playback


def test_a_clear_over_an_older_tail_does_not_silence_the_newer_utterance() -> None:
    # u1's tail is still queued when u2 begins (a voicemail message after the greeting, say):
    # the caller heard u1 cut, and the sender, told about u1, keeps sending u2, which plays.
    playback = _u1_tail_then_u2()
    queued_u2 = playback.audio_queued - 6  # u1: five frames and its padded tail
    cleared = playback.clear(keep_newer=True)  # the edge's own barge-in
    assert (cleared.utterance_id, cleared.frames_dropped, cleared.marks_dropped) == ("u1", 6, ("u1",))
    assert not playback.muted
    # u2 plays on from its start: none of its frames went with u1's tail.
    assert playback.audio_queued == queued_u2
    assert {item.utterance_id for item in _drain(playback)} == {"u2"}
    assert playback.enqueue(np.ones(2400, dtype=np.int16).tobytes()) == 5
    assert playback.utterance_id == "u2"
    second = playback.clear()  # the model's own clear for u2 is recorded, once
    assert second.utterance_id == "u2"
    assert playback.muted


def test_a_senders_own_clear_over_an_older_tail_drops_the_newer_utterance_too() -> None:
    # The model was interrupted while the caller still heard u1's tail and u2 was arriving:
    # the worker's clear stops u2 as well (it stops sending it), and what is still in flight
    # of it is dropped until the next utterance begins.
    playback = _u1_tail_then_u2()
    cleared = playback.clear()
    assert (cleared.utterance_id, cleared.frames_dropped, cleared.marks_dropped) == ("u1", 11, ("u1",))
    assert playback.audio_queued == 0
    assert playback.muted
    assert playback.enqueue(np.ones(2400, dtype=np.int16).tobytes()) == 0
    playback.begin_utterance("u3")
    assert playback.enqueue(np.ones(2400, dtype=np.int16).tobytes()) == 5


def _drain(playback: Playback) -> list[AudioItem]:
    items = []
    while (item := playback.pop()) is not None:
        assert isinstance(item, AudioItem)
        items.append(item)
    return items


def test_a_sender_that_never_names_utterances_is_not_muted_by_a_clear() -> None:
    playback = Playback()
    playback.enqueue(np.ones(2400, dtype=np.int16).tobytes())
    assert playback.clear().utterance_id == "edge-utterance-1"
    assert playback.enqueue(np.ones(2400, dtype=np.int16).tobytes()) == 5
    assert playback.utterance_id == "edge-utterance-2"


def test_a_mark_without_new_audio_adds_no_silence() -> None:
    playback = Playback()
    playback.mark("only")
    assert playback.pop() == MarkItem("only")
    assert playback.pop() is None


def _played(chunks: list[bytes]) -> list[bytes]:
    playback = Playback()
    playback.begin_utterance("u1")
    for chunk in chunks:
        playback.enqueue(chunk)
    playback.mark("end")
    items = [playback.pop() for _ in range(len(playback))]
    return [i.mulaw for i in items if isinstance(i, AudioItem)]


def test_chunks_of_any_sample_count_play_as_one_piece_would() -> None:
    # A model's chunks need not hold whole groups of three samples (24 kHz -> 8 kHz): the
    # resampler carries its phase over, on its block path as on the strided one.
    speech = (np.sin(np.arange(24000) * 2 * np.pi * 300 / 24000) * 8000).astype("<i2").tobytes()
    whole = _played([speech])
    odd = _played([speech[i : i + 2002] for i in range(0, len(speech), 2002)])  # 1,001 samples
    assert len(odd) == len(whole)
    decoded = [np.frombuffer(mulaw.decode_to_bytes(b"".join(frames)), dtype="<i2") for frames in (whole, odd)]
    assert np.abs(decoded[0].astype(np.int32) - decoded[1]).max() <= 64  # one μ-law step at most


def test_an_odd_number_of_bytes_is_refused() -> None:
    playback = Playback()
    playback.begin_utterance("u1")
    with pytest.raises(ValueError, match="even number of bytes"):
        playback.enqueue(b"\x00\x01\x02")
