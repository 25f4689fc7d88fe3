"""μ-law codec: agreement with audioop's decoder, silence, round-trip error and monotonicity."""

import warnings
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.audio import mulaw

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)


def _audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module: ModuleType = pytest.importorskip("audioop")
        return module


def test_decode_table_matches_audioop_values() -> None:
    audioop = _audioop()
    codes = bytes(range(256))
    expected = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype="<i2")
    assert np.array_equal(mulaw.DECODE_TABLE, expected)
    assert np.array_equal(mulaw.decode(codes), expected)
    assert mulaw.decode_to_bytes(codes) == expected.tobytes()


def test_table_decoder_matches_the_scalar_reference() -> None:
    assert [mulaw.decode_sample(code) for code in range(256)] == mulaw.DECODE_TABLE.tolist()
    assert int(mulaw.DECODE_TABLE.max()) == 32124
    assert int(mulaw.DECODE_TABLE.min()) == -32124


def test_encode_table_matches_the_scalar_reference_for_every_sample() -> None:
    expected = np.array([mulaw.encode_sample(int(s)) for s in ALL_SAMPLES], dtype=np.uint8)
    assert np.array_equal(np.frombuffer(mulaw.encode(ALL_SAMPLES), dtype=np.uint8), expected)


def test_silence_encodes_to_0xff() -> None:
    assert mulaw.encode(bytes(320)) == b"\xff" * 160
    assert mulaw.encode(np.zeros(4, dtype=np.int16)) == b"\xff" * 4
    assert mulaw.decode(b"\xff").tolist() == [0]


def test_bytes_and_array_inputs_encode_alike() -> None:
    samples = np.array([-32768, -1000, -1, 0, 1, 1000, 32767], dtype=np.int16)
    assert mulaw.encode(samples) == mulaw.encode(samples.astype("<i2").tobytes())


def test_odd_length_pcm_is_refused() -> None:
    with pytest.raises(ValueError, match="even number"):
        mulaw.encode(b"\x00\x01\x02")


def _half_step(sample: int) -> int:
    # The decoder returns the middle of the quantisation interval, whose width is 2**(exp+3).
    magnitude = min(abs(sample), mulaw.CLIP) + mulaw.BIAS
    return 1 << (magnitude.bit_length() - 8 + 2)


@given(st.lists(st.integers(-32768, 32767), min_size=1, max_size=400))
def test_round_trip_error_stays_within_half_a_step(samples: list[int]) -> None:
    decoded = mulaw.decode(mulaw.encode(np.array(samples, dtype=np.int16))).tolist()
    for sample, back in zip(samples, decoded, strict=True):
        if abs(sample) > mulaw.CLIP:
            assert back == (32124 if sample > 0 else -32124)
        else:
            assert abs(sample - back) <= _half_step(sample)
            assert back == 0 or (back > 0) == (sample > 0)


def test_encoding_is_monotone_in_decoded_value() -> None:
    decoded = mulaw.decode(mulaw.encode(ALL_SAMPLES)).astype(np.int32)
    assert np.all(np.diff(decoded) >= 0)


def test_encoder_is_within_one_level_of_audioops_encoder() -> None:
    # CPython's codec works on 14 bits and floors negatives, so bytes differ (PROTOCOLS C);
    # what a listener hears must differ by at most one quantisation level.
    audioop = _audioop()
    levels = np.unique(mulaw.DECODE_TABLE)
    ours = np.searchsorted(levels, mulaw.decode(mulaw.encode(ALL_SAMPLES)))
    theirs_bytes = audioop.lin2ulaw(ALL_SAMPLES.astype("<i2").tobytes(), 2)
    theirs = np.searchsorted(levels, mulaw.decode(theirs_bytes))
    assert np.abs(ours - theirs).max() <= 1


def test_numpy_decoder_used_without_audioop_gives_the_same_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codes = bytes(range(256)) * 2
    with_audioop = mulaw.decode(codes).copy()
    monkeypatch.setattr(mulaw, "_audioop", None)
    assert np.array_equal(mulaw.decode(codes), with_audioop)
    assert mulaw.decode_to_bytes(codes) == with_audioop.astype("<i2").tobytes()
