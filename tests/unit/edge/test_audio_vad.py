"""Speech detection: the hysteresis state machine (exhaustively) and webrtcvad on real speech."""

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.audio.speech import synthesize, to_rate
from edge.audio.vad import (
    DEFAULT_POLICY,
    SILENCE_DBFS,
    SpeechDetector,
    SpeechEvent,
    SpeechStarted,
    SpeechStopped,
    VadPolicy,
    VadState,
    energy_dbfs,
    finish,
    step,
)

FRAME_MS = 20


def run(frames: str, policy: VadPolicy = DEFAULT_POLICY) -> list[tuple[int, SpeechEvent]]:
    """Feed '1'/'0' frames 20 ms apart; return (frame index emitted at, event)."""
    state, events = VadState(), []
    for index, flag in enumerate(frames):
        state, event = step(state, flag == "1", index * FRAME_MS, policy)
        if event is not None:
            events.append((index, event))
    return events


def test_three_voiced_frames_start_speech_at_the_first_of_them() -> None:
    assert run("0001110") == [(5, SpeechStarted(stream_ms=60))]


def test_blips_shorter_than_the_onset_are_ignored() -> None:
    assert run("0110110100110" + "0" * 20) == []


def test_speech_stops_after_the_hang_over_at_the_end_of_the_last_voiced_frame() -> None:
    frames = "111" + "1" * 7 + "0" * 15
    assert run(frames) == [
        (2, SpeechStarted(stream_ms=0)),
        (24, SpeechStopped(stream_ms=200, duration_ms=200)),
    ]


def test_a_pause_shorter_than_the_hang_over_keeps_the_utterance_open() -> None:
    frames = "1111" + "0" * 14 + "111" + "0" * 15
    assert run(frames) == [
        (2, SpeechStarted(stream_ms=0)),
        (35, SpeechStopped(stream_ms=420, duration_ms=420)),
    ]


def test_onset_and_hang_over_are_configurable() -> None:
    policy = VadPolicy(onset_frames=1, hangover_frames=2)
    assert run("0100", policy) == [
        (1, SpeechStarted(stream_ms=20)),
        (3, SpeechStopped(stream_ms=40, duration_ms=20)),
    ]


def test_policy_refuses_zero_frames() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        VadPolicy(onset_frames=0)


def test_finish_closes_an_open_utterance_where_the_voice_stopped() -> None:
    state = VadState()
    for index, flag in enumerate("1111100"):
        state, _ = step(state, flag == "1", index * FRAME_MS)
    assert finish(state, 140) == (VadState(), SpeechStopped(stream_ms=100, duration_ms=100))
    assert finish(VadState(), 140) == (VadState(), None)


def reference(frames: str, onset: int, hangover: int) -> list[tuple[int, SpeechEvent]]:
    """The specification read literally: look ahead for runs, no state machine."""
    events: list[tuple[int, SpeechEvent]] = []
    position, started = 0, 0
    while True:
        start = frames.find("1" * onset, position)
        if start < 0:
            return events
        started = start * FRAME_MS
        events.append((start + onset - 1, SpeechStarted(stream_ms=started)))
        stop = frames.find("0" * hangover, start + onset)
        if stop < 0:
            return events
        stopped = stop * FRAME_MS
        events.append((stop + hangover - 1, SpeechStopped(stream_ms=stopped, duration_ms=stopped - started)))
        position = stop + hangover


@pytest.mark.parametrize(("onset", "hangover"), [(1, 1), (2, 3), (3, 2), (3, 4)])
def test_state_machine_matches_the_reference_on_every_sequence_of_12_frames(
    onset: int, hangover: int
) -> None:
    policy = VadPolicy(onset_frames=onset, hangover_frames=hangover)
    for bits in itertools.product("01", repeat=12):
        frames = "".join(bits)
        assert run(frames, policy) == reference(frames, onset, hangover), frames


@given(st.text(alphabet="01", max_size=300))
def test_events_alternate_and_utterances_last_at_least_the_onset(frames: str) -> None:
    events = [event for _, event in run(frames)]
    assert all(isinstance(e, SpeechStarted) for e in events[0::2])
    assert all(isinstance(e, SpeechStopped) for e in events[1::2])
    for event in events[1::2]:
        assert isinstance(event, SpeechStopped)
        assert event.duration_ms >= 3 * FRAME_MS


def test_energy_dbfs() -> None:
    assert energy_dbfs(np.zeros(320, dtype=np.int16)) == SILENCE_DBFS
    assert energy_dbfs(np.full(320, -32768, dtype=np.int16)) == pytest.approx(0.0)
    sine = np.rint(3276.8 * np.sin(np.arange(320) * 0.3)).astype(np.int16)
    assert energy_dbfs(sine) == pytest.approx(-20.0 - 3.01, abs=0.1)
    assert energy_dbfs(sine.astype("<i2").tobytes()) == energy_dbfs(sine)


def detect(samples: npt.NDArray[np.int16], aggressiveness: int) -> list[SpeechEvent]:
    detector = SpeechDetector(aggressiveness)
    events = [detector.process(samples[i : i + 320], i // 16) for i in range(0, len(samples) - 319, 320)]
    closing = detector.finish(len(samples) // 16)
    return [e for e in [*events, closing] if e is not None]


@pytest.fixture(scope="module")
def spoken_16k() -> npt.NDArray[np.int16]:
    samples, rate = synthesize("hello, I would like to book a table")
    return to_rate(samples, rate, 16000)


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
def test_real_speech_starts_near_its_onset_and_stops_after_it(
    spoken_16k: npt.NDArray[np.int16], aggressiveness: int
) -> None:
    silence = np.zeros(16000, dtype=np.int16)
    events = detect(np.concatenate([silence, spoken_16k, silence]), aggressiveness)
    loud = np.nonzero(np.abs(spoken_16k) > 500)[0]
    onset_ms, end_ms = 1000 + loud[0] // 16, 1000 + loud[-1] // 16
    assert len(events) == 2
    started, stopped = events
    assert isinstance(started, SpeechStarted)
    assert isinstance(stopped, SpeechStopped)
    assert abs(started.stream_ms - onset_ms) <= 60
    assert end_ms - 100 <= stopped.stream_ms <= end_ms + 200
    assert stopped.duration_ms == stopped.stream_ms - started.stream_ms


def test_nothing_is_detected_in_digital_silence() -> None:
    assert detect(np.zeros(16000 * 3, dtype=np.int16), 2) == []


@pytest.mark.parametrize("level", [30.0, 100.0, 300.0])
def test_nothing_is_detected_in_low_white_noise_at_aggressiveness_3(level: float) -> None:
    noise = np.random.default_rng(3).standard_normal(16000 * 3) * level
    assert detect(noise.astype(np.int16), 3) == []


def test_detector_refuses_frames_webrtcvad_cannot_take() -> None:
    with pytest.raises(ValueError, match="10, 20 or 30 ms"):
        SpeechDetector().process(np.zeros(100, dtype=np.int16), 0)
    with pytest.raises(ValueError, match="0-3"):
        SpeechDetector(4)
