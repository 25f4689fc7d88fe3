"""Streaming resampler: exact frame lengths, seamless joins, anti-aliasing and passband."""

import itertools
import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from edge.audio.resampler import StreamingResampler, _BlockPlan

# (source rate, destination rate): every conversion the edge performs.
CONVERSIONS = [(8000, 16000), (16000, 8000), (24000, 8000), (24000, 16000), (8000, 24000)]


def _tone(freq: float, rate: int, seconds: float, amplitude: float = 10000.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _stream(
    resampler: StreamingResampler, samples: npt.NDArray[np.int16], frame: int
) -> list[npt.NDArray[np.int16]]:
    return [resampler.process(samples[i : i + frame]) for i in range(0, len(samples), frame)]


def _rms_db(samples: npt.NDArray[np.int16]) -> float:
    values = samples.astype(np.float64)
    return 10 * math.log10(float(np.mean(values * values)) + 1e-12)


@pytest.mark.parametrize(("src", "dst"), CONVERSIONS)
def test_every_20ms_frame_gives_exactly_len_times_ratio(src: int, dst: int) -> None:
    resampler = StreamingResampler.for_rates(src, dst)
    frame = src // 50
    outputs = _stream(resampler, _tone(1000, src, 1.0), frame)
    assert {len(out) for out in outputs} == {dst // 50}


@pytest.mark.parametrize(("src", "dst"), CONVERSIONS)
def test_delay_is_constant_and_under_one_frame(src: int, dst: int) -> None:
    resampler = StreamingResampler.for_rates(src, dst)
    impulse = np.zeros(src // 50 * 3, dtype=np.int16)
    impulse[0] = 10000
    out = np.concatenate(_stream(resampler, impulse, src // 50))
    assert resampler.delay_samples <= dst // 50
    assert int(np.argmax(out)) == pytest.approx(resampler.delay_samples, abs=1)


@pytest.mark.parametrize(("src", "dst"), CONVERSIONS)
def test_streaming_equals_one_block_and_scipy_upfirdn(src: int, dst: int) -> None:
    samples = _tone(1000, src, 0.5)
    streamed = np.concatenate(_stream(StreamingResampler.for_rates(src, dst), samples, src // 50))
    block = StreamingResampler.for_rates(src, dst).process(samples)
    resampler = StreamingResampler.for_rates(src, dst)
    reference = signal.upfirdn(resampler.taps, samples.astype(np.float64), resampler.up, resampler.down)
    assert np.abs(streamed.astype(np.int32) - block).max() <= 1
    assert np.abs(streamed - reference[: len(streamed)]).max() <= 1.0


@pytest.mark.parametrize(("src", "dst"), CONVERSIONS)
def test_no_clicks_at_frame_joins(src: int, dst: int) -> None:
    # Frame-by-frame output must be the ideal sine delayed by `delay_samples`, joins included;
    # stateless per-frame resampling (resample_poly per frame) is off by 250-740 LSB here.
    amplitude, freq = 10000.0, 1000.0
    resampler = StreamingResampler.for_rates(src, dst)
    out = np.concatenate(_stream(resampler, _tone(freq, src, 0.5, amplitude), src // 50))
    n = np.arange(len(out))
    ideal = amplitude * np.sin(2 * np.pi * freq * (n - resampler.delay_samples) / dst)
    steady = slice(dst // 50, None)  # skip the filter's start-up ramp
    assert np.abs(out - ideal)[steady].max() <= 4.0


@settings(max_examples=40, deadline=None)
@given(
    conversion=st.sampled_from(CONVERSIONS),
    cuts=st.lists(st.integers(0, 700), min_size=1, max_size=12),
)
def test_any_chunking_gives_the_same_stream(conversion: tuple[int, int], cuts: list[int]) -> None:
    src, dst = conversion
    samples = (np.random.default_rng(7).standard_normal(4000) * 3000).astype(np.int16)
    whole = StreamingResampler.for_rates(src, dst).process(samples)
    resampler = StreamingResampler.for_rates(src, dst)
    bounds = sorted({0, *cuts, len(samples)})
    pieces = [resampler.process(samples[a:b]) for a, b in itertools.pairwise(bounds)]
    assert np.abs(np.concatenate(pieces).astype(np.int32) - whole).max() <= 1


@pytest.mark.parametrize("freq", [4200.0, 6000.0, 9000.0, 11500.0])
def test_divide_by_three_rejects_what_would_alias(freq: float) -> None:
    samples = _tone(freq, 24000, 1.0, amplitude=30000.0)
    out = np.concatenate(_stream(StreamingResampler(1, 3), samples, 480))
    attenuation = _rms_db(samples) - _rms_db(out[800:])
    assert attenuation >= 60.0


def test_six_khz_tone_is_at_least_50_db_down_after_24k_to_8k() -> None:
    samples = _tone(6000, 24000, 1.0, amplitude=30000.0)
    out = np.concatenate(_stream(StreamingResampler.for_rates(24000, 8000), samples, 480))
    assert _rms_db(samples) - _rms_db(out[800:]) >= 50.0


@pytest.mark.parametrize(("src", "dst"), CONVERSIONS)
@pytest.mark.parametrize("freq", [300.0, 1000.0, 3300.0])
def test_passband_tones_keep_their_level_within_1_db(src: int, dst: int, freq: float) -> None:
    samples = _tone(freq, src, 1.0)
    out = np.concatenate(_stream(StreamingResampler.for_rates(src, dst), samples, src // 50))
    assert abs(_rms_db(out[dst // 10 :]) - _rms_db(samples[src // 10 :])) <= 1.0


def test_upsampling_8k_to_16k_leaves_no_image_above_4khz() -> None:
    out = np.concatenate(_stream(StreamingResampler.for_rates(8000, 16000), _tone(1000, 8000, 1.0), 160))
    spectrum = np.abs(np.fft.rfft(out[1600:] * np.hanning(len(out) - 1600)))
    freqs = np.fft.rfftfreq(len(out) - 1600, 1 / 16000)
    image = spectrum[(freqs > 6500) & (freqs < 7500)].max()
    assert 20 * math.log10(image / spectrum.max()) <= -60.0


def test_flush_drains_the_delay_and_resets() -> None:
    resampler = StreamingResampler.for_rates(24000, 8000)
    samples = _tone(1000, 24000, 0.1)
    body = np.concatenate(_stream(resampler, samples, 480))
    tail = resampler.flush()
    assert len(tail) == math.ceil(resampler.delay_samples)
    reference = signal.upfirdn(resampler.taps, samples.astype(np.float64), 1, 3)
    full = np.concatenate([body, tail])
    assert np.abs(full - reference[: len(full)]).max() <= 1.0
    assert np.array_equal(resampler.process(samples[:480]), StreamingResampler(1, 3).process(samples[:480]))


def test_reset_forgets_the_previous_stream() -> None:
    resampler = StreamingResampler.for_rates(8000, 16000)
    resampler.process(_tone(1000, 8000, 0.02))
    resampler.reset()
    silence = np.zeros(160, dtype=np.int16)
    assert not resampler.process(silence).any()


def test_output_length_predicts_the_next_call() -> None:
    resampler = StreamingResampler(2, 3)
    for size in [7, 1, 480, 2, 33]:
        expected = resampler.output_length(size)
        assert len(resampler.process(np.zeros(size, dtype=np.int16))) == expected


def test_loud_input_saturates_instead_of_wrapping() -> None:
    square = np.tile(np.array([32767] * 8 + [-32768] * 8, dtype=np.int16), 40)
    resampler = StreamingResampler.for_rates(8000, 16000)
    out = resampler.process(square)
    ideal = signal.upfirdn(resampler.taps, square.astype(np.float64), 2, 1)[: len(out)]
    assert ideal.max() > 32767  # the filter's overshoot really exceeds full scale here
    assert np.abs(out - np.clip(ideal, -32768, 32767)).max() <= 1.0


@pytest.mark.parametrize(
    ("src", "dst", "frame"),
    [(8000, 16000, 160), (8000, 24000, 160), (24000, 8000, 480), (24000, 8000, 24000), (16000, 8000, 320)],
)
def test_block_frames_match_one_block_of_the_whole_stream(src: int, dst: int, frame: int) -> None:
    # 20 ms frames (and a whole second of agent audio) take the block-product path; odd
    # lengths take the strided one.
    samples = (np.random.default_rng(3).standard_normal(2 * src) * 8000).astype(np.int16)
    resampler = StreamingResampler.for_rates(src, dst)
    framed = np.concatenate(_stream(resampler, samples, frame))
    odd = np.concatenate(_stream(StreamingResampler.for_rates(src, dst), samples, 13))
    reference = signal.upfirdn(resampler.taps, samples.astype(np.float64), resampler.up, resampler.down)
    assert np.abs(framed - np.clip(reference[: len(framed)], -32768, 32767)).max() <= 1.0
    assert np.abs(framed[: len(odd)].astype(np.int32) - odd[: len(framed)]).max() <= 1


@pytest.mark.parametrize("lead", [1, 2, 13])
def test_the_block_path_takes_frames_at_any_phase(lead: int) -> None:
    # A first chunk that is not a whole group of three leaves 24k->8k mid-phase; the 20 ms
    # frames after it still take the block-product path, and still match upfirdn.
    samples = (np.random.default_rng(5).standard_normal(24000 + lead) * 8000).astype(np.int16)
    resampler = StreamingResampler.for_rates(24000, 8000)
    out = [resampler.process(samples[:lead])]
    assert resampler._offset != 0
    for start in range(lead, len(samples) - 479, 480):
        out.append(resampler.process(samples[start : start + 480]))
        assert isinstance(resampler._plans[(resampler._offset, 480)], _BlockPlan)
    streamed = np.concatenate(out)
    reference = signal.upfirdn(resampler.taps, samples.astype(np.float64), resampler.up, resampler.down)
    assert np.abs(streamed - np.clip(reference[: len(streamed)], -32768, 32767)).max() <= 1.0


def test_phone_band_interpolator_is_short_and_rejects_images_of_the_band() -> None:
    # Input band-limited to 3.4 kHz images at 4.6 kHz and up: 65 dB down with 55 taps.
    resampler = StreamingResampler.for_rates(8000, 16000)
    assert resampler.taps.size <= 55
    assert resampler.delay_samples <= 27
    out = np.concatenate(_stream(resampler, _tone(3400, 8000, 1.0, amplitude=20000.0), 160))
    spectrum = np.abs(np.fft.rfft(out[1600:] * np.hanning(len(out) - 1600)))
    freqs = np.fft.rfftfreq(len(out) - 1600, 1 / 16000)
    image = spectrum[(freqs > 4500) & (freqs < 4700)].max()
    assert 20 * math.log10(image / spectrum.max()) <= -60.0
