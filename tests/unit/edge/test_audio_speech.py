"""The offline espeak-ng speech source used by simulators and tests."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edge.audio.speech import ESPEAK_RATE, SpeechSynthesisError, synthesize, to_rate


def test_synthesize_returns_audible_int16_at_22050_hz() -> None:
    samples, rate = synthesize("good evening")
    assert rate == ESPEAK_RATE == 22050
    assert samples.dtype == np.int16
    assert 0.3 < len(samples) / rate < 3.0
    assert np.abs(samples).max() > 5000


def test_concurrent_calls_do_not_mix_their_audio() -> None:
    texts = ["one", "this sentence is clearly much longer than the other one"] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        lengths = [len(samples) for samples, _ in pool.map(synthesize, texts)]
    # espeak-ng's output length varies by a few ms between runs, never by whole words.
    short, long = lengths[0::2], lengths[1::2]
    assert max(short) < 0.5 * min(long)
    assert max(long) - min(long) < 0.05 * min(long)


def test_unknown_voice_is_an_error() -> None:
    with pytest.raises(SpeechSynthesisError, match="voice"):
        synthesize("hello", voice="no-such-voice")
    assert len(synthesize("hello")[0]) > 0  # and the engine still works afterwards


def test_to_rate_converts_the_length() -> None:
    samples, rate = synthesize("testing")
    resampled = to_rate(samples, rate, 8000)
    assert abs(len(resampled) - len(samples) * 8000 / rate) <= 1
    assert to_rate(samples, rate, rate) is not samples
