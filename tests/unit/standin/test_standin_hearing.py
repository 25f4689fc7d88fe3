"""The stand-in's speech onset/end detection on real synthesised speech and on silence."""

from __future__ import annotations

import numpy as np

from streams.standin.hearing import Heard, Hearing
from streams.standin.voice import ESPEAK_RATE, OUTPUT_RATE, reply_pcm, resample, synthesize


def _speech_16k() -> bytes:
    speech = resample(synthesize("I would like to book a table"), ESPEAK_RATE, 16000)
    silence = np.zeros(16000, dtype=np.int16)
    return np.concatenate([silence[:3200], speech, silence]).astype("<i2").tobytes()


def test_speech_then_silence_gives_one_start_and_one_stop_in_any_chunk_size() -> None:
    pcm = _speech_16k()
    for chunk in (320, 640, 1000, len(pcm)):
        hearing = Hearing(hangover_ms=300)
        events = [e for i in range(0, len(pcm), chunk) for e in hearing.feed(pcm[i : i + chunk])]
        assert events == [Heard.STARTED, Heard.STOPPED], chunk
        assert 800 < hearing.voiced_ms < 2500


def test_silence_is_not_speech_and_finish_closes_an_open_utterance() -> None:
    hearing = Hearing()
    assert hearing.feed(bytes(32000)) == []
    assert hearing.finish() == []
    pcm = _speech_16k()[: 16000 * 2]  # cut mid-sentence
    assert hearing.feed(pcm) == [Heard.STARTED]
    assert hearing.finish() == [Heard.STOPPED]


def test_replies_are_24khz_speech() -> None:
    pcm = reply_pcm("Sure, for how many?")
    samples = np.frombuffer(pcm, dtype="<i2")
    assert 0.5 < samples.size / OUTPUT_RATE < 3.0
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 500
