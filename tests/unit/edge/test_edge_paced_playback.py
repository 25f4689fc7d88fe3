"""A call's playback paced by the node's clock: real-time pace, marks in order, a full socket waited for."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from edge.bridge_server import apply_directive
from edge.call import LiveCall
from edge.media_socket import MediaLoop
from edge.node import EdgeNode
from edge.publisher import RecordingPublisher
from edge.telephony import RecordingTelephony
from infra.settings import Settings
from schemas import bridge
from tests.support.twilio_socket import RecordingTwilioSocket
from voiceagent.caller import SimulatedCaller

# The start Twilio sends, from the product's simulated client (built, never connected).
_TWILIO = SimulatedCaller("wss://edge.example.com/twilio/media", "token", stream_sid="MZ1", call_sid="CA1")
START = json.dumps(_TWILIO.start_frame({"call_id": "call-1", "tenant_id": "t1", "agent_id": "a1"}))
FRAMES = 10
AUDIO = (np.sin(np.arange(480 * FRAMES) * 0.05) * 8000).astype(np.int16).tobytes()  # 200 ms at 24 kHz


class TimedSocket(RecordingTwilioSocket):
    """Also notes when each frame was sent, on the loop's clock."""

    def __init__(self, *, takes_at_once: bool = True) -> None:
        super().__init__(takes_at_once=takes_at_once)
        self.times: list[float] = []

    def _note(self) -> None:
        self.times.append(asyncio.get_running_loop().time())

    async def send_text(self, data: str) -> None:
        self._note()
        await super().send_text(data)

    def try_send_text(self, data: str) -> bool:
        if not self.takes_at_once:
            return False
        self._note()
        return super().try_send_text(data)


async def _playing(socket: TimedSocket) -> tuple[EdgeNode, MediaLoop, LiveCall]:
    node = EdgeNode(Settings(env="test"), publisher=RecordingPublisher(), telephony=RecordingTelephony())
    loop = MediaLoop(socket, node)
    loop.on_message(START)
    assert loop.call is not None
    await apply_directive(loop.call, bridge.BeginUtterance(utterance_id="u1"))
    await apply_directive(loop.call, bridge.AgentAudio(seq=0, pcm=AUDIO))
    await apply_directive(loop.call, bridge.PlayMark(name="u1"))
    return node, loop, loop.call


async def _until_sent(socket: TimedSocket, count: int) -> None:
    async def wait() -> None:
        while len(socket.sent) < count:  # noqa: ASYNC110 - the clock's timer sends
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), 5.0)


async def _until_marks(socket: TimedSocket, count: int) -> list[str]:
    """The events sent once ``count`` marks are among them."""

    async def wait() -> None:
        while sum('"mark"' in text for text in socket.sent) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), 5.0)
    return [json.loads(text)["event"] for text in socket.sent]


@pytest.mark.parametrize("takes_at_once", [True, False], ids=["socket takes frames", "full socket"])
async def test_agent_audio_goes_out_at_real_time_pace_with_its_mark_after_it(takes_at_once: bool) -> None:
    socket = TimedSocket(takes_at_once=takes_at_once)
    node, loop, call = await _playing(socket)
    began = asyncio.get_running_loop().time()
    events = await _until_marks(socket, 1)
    frames = call.session.playback.frames_sent  # the mark pads the utterance's last frame
    assert frames in (FRAMES, FRAMES + 1)
    assert events == ["media"] * frames + ["mark"]
    media_times = socket.times[:frames]
    assert media_times[0] - began < 0.01  # the first frame goes at once
    # Paced: never ahead of real time. A tick delayed by a busy machine is caught up on the next
    # one (a shorter gap, by design), so single gaps are not bounded; but a call that kept its
    # phase sends at 20 ms on the whole, where one that drifted each frame went late, then burst.
    grid = media_times[0] + 0.02 * np.arange(frames)
    assert (np.asarray(media_times) >= grid - 0.004).all(), np.diff(media_times)
    assert np.median(np.diff(media_times)) <= 0.021, np.diff(media_times)
    assert 0 <= socket.times[frames] - media_times[-1] < 0.03  # the mark follows its audio
    # A socket that takes frames at once is never awaited; a full one always is.
    assert socket.awaited_sends == (0 if takes_at_once else frames + 1)
    await loop.finish("twilio_stop")
    node.playback_clock.close()


async def test_a_call_that_ends_while_playing_sends_nothing_more() -> None:
    socket = TimedSocket()
    node, loop, _ = await _playing(socket)
    await _until_sent(socket, 2)
    await loop.finish("twilio_stop")
    sent = len(socket.sent)
    await asyncio.sleep(0.1)
    assert len(socket.sent) == sent
    node.playback_clock.close()


async def test_audio_queued_after_a_pause_starts_at_once_and_keeps_the_pace() -> None:
    socket = TimedSocket()
    node, loop, call = await _playing(socket)
    await _until_marks(socket, 1)
    await asyncio.sleep(0.1)  # the queue was idle: the call left the clock
    before = len(socket.sent)
    resumed = asyncio.get_running_loop().time()
    await apply_directive(call, bridge.AgentAudio(seq=1, pcm=AUDIO[: 480 * 2 * 3]))
    await apply_directive(call, bridge.PlayMark(name="u2"))
    await _until_marks(socket, 2)
    assert socket.times[before] - resumed < 0.01  # the first frame after the pause goes at once
    assert socket.times[before + 2] - socket.times[before] >= 0.035  # then the pace again
    await loop.finish("twilio_stop")
    node.playback_clock.close()


class FailingOnceSocket(TimedSocket):
    """Raises on its second frame (the first the clock's tick sends), then takes frames again."""

    tries = 0

    def try_send_text(self, data: str) -> bool:
        self.tries += 1
        if self.tries == 2:
            raise RuntimeError("a transport that failed once")
        return super().try_send_text(data)


async def test_a_call_whose_tick_failed_still_plays_the_audio_queued_next() -> None:
    # The clock drops a player that raises; the call still believed it was on the clock and
    # ignored every later playback_ready: silence, and marks (a hang-up's) never sent.
    socket = FailingOnceSocket()
    node, loop, call = await _playing(socket)
    await asyncio.sleep(0.1)  # the tick failed; the rest of that utterance is not played
    before = len(socket.sent)
    await apply_directive(call, bridge.AgentAudio(seq=1, pcm=AUDIO[: 480 * 2 * 3]))
    await apply_directive(call, bridge.PlayMark(name="u2"))
    await _until_marks(socket, 1)
    assert len(socket.sent) > before
    await loop.finish("twilio_stop")
    node.playback_clock.close()
