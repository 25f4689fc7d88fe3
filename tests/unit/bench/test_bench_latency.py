"""The benches' latency matching: caller frames to the stand-in's chunks, answers to frames heard."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))
from latency import PCM_FRAME_BYTES, Latencies, stats


def _timing(audio_in: list[tuple[float, int]], audio_out: list[tuple[float, int, int]]) -> dict[str, object]:
    return {"audio_in": audio_in, "audio_out": audio_out}


def test_each_frame_is_matched_to_the_chunk_its_bytes_arrived_in() -> None:
    sent = [0.000, 0.020, 0.040, 0.060]
    heard = [0.010]  # the agent was first heard here: frame 0 had waited in the edge's buffer
    chunks = [(0.013, PCM_FRAME_BYTES), (0.035, PCM_FRAME_BYTES), (0.070, 2 * PCM_FRAME_BYTES)]
    found = Latencies()
    found.add_call(sent, heard, _timing(chunks, []), window=(0.03, 1.0))

    assert found.uplink == pytest.approx([15.0, 30.0, 10.0])
    assert found.uplink_in_window == pytest.approx([30.0, 10.0])
    assert found.uplink_chunks_of_several_frames == 1
    assert found.uplink_chunks_unmatched == 0


def test_a_chunk_that_is_not_whole_frames_or_more_than_was_sent_is_counted_not_matched() -> None:
    found = Latencies()
    found.add_call([0.0], [0.0], _timing([(0.01, 700), (0.02, 2 * PCM_FRAME_BYTES)], []))
    assert found.uplink == []
    assert found.uplink_chunks_unmatched == 2


def test_an_answer_is_timed_to_its_first_frame_heard_and_the_greeting_is_left_out() -> None:
    heard = [0.01, 0.03, 0.50, 0.52, 0.90]
    out = [(0.00, 1, 0), (0.45, 2, 0), (0.46, 2, 1), (0.89, 3, 0), (3.0, 4, 0)]
    found = Latencies()
    found.add_call([], heard, _timing([], out))

    # Answer 2: heard at 0.50. Answer 3 left 0.37 s after a frame was heard at 0.52, so its own
    # first frame is 0.90. Answer 4: nothing heard after it.
    assert found.downlink == pytest.approx([50.0, 10.0])
    assert found.answers_unmatched == 1


def test_an_answer_while_the_caller_still_hears_the_previous_one_is_not_attributed() -> None:
    found = Latencies()
    found.add_call([], [0.40, 0.42, 0.44, 0.46], _timing([], [(0.0, 1, 0), (0.43, 2, 0)]))
    assert found.downlink == []
    assert found.answers_unmatched == 1


def test_stats_leave_out_missing_values() -> None:
    assert stats([None, 1.0, 3.0, None], digits=1)["n"] == 2
    assert stats([None]) == {"n": 0}
