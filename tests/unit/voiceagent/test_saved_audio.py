"""What the CLI shows and saves: the WAV (what the caller heard, when), the echo, the timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from schemas.ids import CallId, CorrelationId, EventId, TenantId
from voiceagent.caller import FRAME_BYTES, SILENCE, Heard, heard_slots
from voiceagent.simulate import _sentence


def _frame(level: int) -> bytes:
    return bytes([level]) * FRAME_BYTES


def test_an_answer_starts_in_the_slot_it_arrived_in_and_pauses_stay() -> None:
    arrivals = [1.0 + 0.02 * i for i in range(10)] + [1.6 + 0.02 * i for i in range(10)]
    assert heard_slots(arrivals, origin=0.0) == list(range(50, 60)) + list(range(80, 90))


def test_jittered_and_bursty_frames_of_one_answer_stay_back_to_back() -> None:
    arrivals = [1.0, 1.0, 1.0, 1.061, 1.079, 1.2]  # a burst, a late frame, then on time
    assert heard_slots(arrivals, origin=0.0) == [50, 51, 52, 53, 54, 60]


def test_the_stereo_channels_line_up_in_time() -> None:
    heard = Heard()
    heard.sent = [SILENCE] * 100
    heard.sent_at = [10.0 + 0.02 * i for i in range(100)]
    heard.heard = [_frame(0x10)] * 5
    heard.heard_at = [11.0 + 0.02 * i for i in range(5)]  # 1 s after the caller's first frame
    pcm = heard.stereo_pcm()
    assert pcm.shape == (100 * FRAME_BYTES, 2)
    right = pcm[:, 1]
    spoken = np.flatnonzero(np.abs(right) > 1000)
    assert spoken[0] == 50 * FRAME_BYTES  # 1.0 s in, not at the start of the file
    assert spoken[-1] == 55 * FRAME_BYTES - 1


def test_heard_audio_after_the_caller_stopped_sending_lengthens_the_file() -> None:
    heard = Heard()
    heard.sent, heard.sent_at = [SILENCE] * 10, [0.02 * i for i in range(10)]
    heard.heard, heard.heard_at = [_frame(0x10)], [1.0]
    assert heard.stereo_pcm().shape == (51 * FRAME_BYTES, 2)


@pytest.mark.parametrize(
    ("said", "sentence"),
    [("Thanks, bye.", "Thanks, bye."), ("Hello", "Hello."), ("Who is it?", "Who is it?"), (" Hi! ", "Hi!")],
)
def test_the_stand_ins_echo_ends_the_callers_words_with_one_stop(said: str, sentence: str) -> None:
    assert _sentence(said) == sentence


def test_the_timeline_shows_times_as_people_read_them() -> None:
    from schemas.call_media import MediaStreamStarted
    from voiceagent.timeline import event_summary

    at = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    event = MediaStreamStarted(
        tenant_id=TenantId("t"),
        call_id=CallId("c"),
        seq=2,
        event_id=EventId("e"),
        occurred_at=at,
        correlation_id=CorrelationId("c"),
        stream_sid="MZ1",
        twilio_call_sid="CA1",
        edge_id="edge-1",
        bridge_url="ws://127.0.0.1:1/bridge",
        bridge_token="tok",
        token_expires_at=at,
    )
    shown = event_summary(event)
    assert "datetime.datetime" not in shown
    assert "token_expires_at=2026-11-27T09:30:00+00:00" in shown
