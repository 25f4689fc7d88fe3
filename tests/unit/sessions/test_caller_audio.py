"""CallerAudioPipe: frames go out at once, coalesce only when the sender is behind, bounded."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.sessions.caller_audio import CallerAudioPipe

FRAME = 640


def _frame(n: int) -> bytes:
    return bytes([n % 256]) * FRAME


class SlowSession:
    """A session whose sends take as long as the test lets them: it holds each send open."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.release = asyncio.Event()
        self.release.set()
        self.in_send = asyncio.Event()

    async def send(self, pcm: bytes) -> None:
        self.in_send.set()
        await self.release.wait()
        self.sent.append(pcm)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_frame_pushed_to_an_idle_pipe_goes_out_alone_at_once() -> None:
    pipe, session = CallerAudioPipe(), SlowSession()
    runner = asyncio.create_task(pipe.run(session.send))
    for n in range(3):
        pipe.push(_frame(n))
        await _settle()
        assert session.sent[-1] == _frame(n)
    runner.cancel()
    assert session.sent == [_frame(0), _frame(1), _frame(2)]
    assert (pipe.sends, pipe.frames_in, pipe.pending_bytes) == (3, 3, 0)


async def test_frames_arriving_during_a_slow_send_go_out_as_one_batch_in_order() -> None:
    pipe, session = CallerAudioPipe(), SlowSession()
    runner = asyncio.create_task(pipe.run(session.send))
    session.release.clear()
    pipe.push(_frame(0))
    await session.in_send.wait()  # frame 0 is being sent; the session is busy
    for n in range(1, 5):
        pipe.push(_frame(n))
    session.release.set()
    await _settle()
    runner.cancel()
    assert session.sent == [_frame(0), b"".join(_frame(n) for n in range(1, 5))]
    assert pipe.sends == 2


async def test_a_backlog_is_split_into_batches_of_at_most_the_batch_size() -> None:
    pipe = CallerAudioPipe(max_batch_bytes=3 * FRAME, max_pending_bytes=100 * FRAME)
    for n in range(7):
        pipe.push(_frame(n))
    batches = [pipe.take_batch() for _ in range(3)]
    assert [len(b) // FRAME for b in batches] == [3, 3, 1]
    assert b"".join(batches) == b"".join(_frame(n) for n in range(7))
    assert pipe.pending_bytes == 0


def test_a_frame_larger_than_the_batch_size_still_goes_out_whole() -> None:
    pipe = CallerAudioPipe(max_batch_bytes=FRAME, max_pending_bytes=10 * FRAME)
    pipe.push(b"\x01" * (2 * FRAME))
    pipe.push(_frame(1))
    assert pipe.take_batch() == b"\x01" * (2 * FRAME)
    assert pipe.take_batch() == _frame(1)


def test_a_stalled_session_keeps_only_the_newest_audio_and_counts_the_rest() -> None:
    pipe = CallerAudioPipe(max_batch_bytes=2 * FRAME, max_pending_bytes=4 * FRAME)
    for n in range(10):
        pipe.push(_frame(n))
    assert (pipe.dropped_frames, pipe.dropped_bytes, pipe.pending_bytes) == (6, 6 * FRAME, 4 * FRAME)
    assert pipe.take_batch() + pipe.take_batch() == b"".join(_frame(n) for n in range(6, 10))


def test_empty_frames_are_ignored() -> None:
    pipe = CallerAudioPipe()
    pipe.push(b"")
    assert (pipe.frames_in, pipe.pending_bytes) == (0, 0)


def test_bounds_must_make_sense() -> None:
    with pytest.raises(ValueError, match="max_batch_bytes"):
        CallerAudioPipe(max_batch_bytes=0)
    with pytest.raises(ValueError, match="max_batch_bytes"):
        CallerAudioPipe(max_batch_bytes=2 * FRAME, max_pending_bytes=FRAME)


async def test_a_failed_send_raises_and_the_queued_audio_waits_for_the_next_connection() -> None:
    pipe = CallerAudioPipe()
    failing = SlowSession()
    failing.release.clear()

    async def broken(pcm: bytes) -> None:
        await failing.send(pcm)
        raise ConnectionError("the Live connection dropped")

    runner = asyncio.create_task(pipe.run(broken))
    pipe.push(_frame(0))
    await failing.in_send.wait()
    pipe.push(_frame(1))
    pipe.push(_frame(2))
    failing.release.set()
    with pytest.raises(ConnectionError):
        await runner
    session = SlowSession()
    runner = asyncio.create_task(pipe.run(session.send))
    await _settle()
    runner.cancel()
    assert session.sent == [_frame(1) + _frame(2)]  # frame 0 was in flight when the connection died


@given(
    ops=st.lists(st.one_of(st.integers(min_value=1, max_value=3 * FRAME), st.none()), max_size=60),
    batch_frames=st.integers(min_value=1, max_value=8),
)
def test_batches_concatenate_to_exactly_what_was_pushed(ops: list[int | None], batch_frames: int) -> None:
    """Any interleaving of pushes (a size) and sends (None): nothing reordered, lost or split."""
    limit = batch_frames * FRAME
    pipe = CallerAudioPipe(max_batch_bytes=limit, max_pending_bytes=10**9)
    pushed: list[bytes] = []
    sent: list[bytes] = []
    for n, op in enumerate(ops):
        if op is None:
            if pipe.pending_bytes:
                sent.append(pipe.take_batch())
            continue
        frame = bytes([n % 256]) * op
        pushed.append(frame)
        pipe.push(frame)
    while pipe.pending_bytes:
        sent.append(pipe.take_batch())
    assert b"".join(sent) == b"".join(pushed)
    # Each batch is whole frames, the next ones in order (a cut frame could split a sample);
    # within the limit, or a single frame that alone exceeds it. Byte equality of the joins
    # above holds for any cut, so the frames are counted off batch by batch.
    frames = iter(pushed)
    for batch in sent:
        taken = [next(frames)]
        while len(b"".join(taken)) < len(batch):
            taken.append(next(frames))
        assert b"".join(taken) == batch
        assert len(batch) <= limit or len(taken) == 1


async def test_a_frame_larger_than_the_whole_bound_is_kept_alone_and_sent() -> None:
    pipe, session = CallerAudioPipe(max_batch_bytes=FRAME, max_pending_bytes=2 * FRAME), SlowSession()
    pipe.push(_frame(0))
    pipe.push(b"\x02" * (3 * FRAME))  # the older frame goes; the new one stays, over the bound
    assert (pipe.dropped_frames, pipe.pending_bytes) == (1, 3 * FRAME)
    runner = asyncio.create_task(pipe.run(session.send))
    await _settle()
    runner.cancel()
    assert session.sent == [b"\x02" * (3 * FRAME)]


def test_clear_forgets_the_queued_audio() -> None:
    pipe = CallerAudioPipe()
    pipe.push(_frame(0))
    pipe.push(_frame(1))
    pipe.clear()
    assert pipe.pending_bytes == 0
    pipe.push(_frame(2))
    assert pipe.take_batch() == _frame(2)
