"""Hanging up on a machine: a retryable failure is tried again, a bounded number of times."""

from __future__ import annotations

import pytest

from schemas.codec import Codec
from streams.dialer.shell import DialerShell
from streams.telephony.port import DialError
from tests.unit.dialer.dialer_scenario import OPTIONS, place, published, status
from tests.unit.dialer.test_dialer_shell_writes import Journal

BACKOFF = (0.001, 0.001, 0.001)


class RefusingLine(Journal):
    """Hang-ups fail with ``errors`` in turn, then succeed."""

    def __init__(self, *errors: Exception) -> None:
        super().__init__()
        self.errors = list(errors)

    async def hang_up(self, call_sid: str) -> None:
        await super().hang_up(call_sid)
        if self.errors:
            raise self.errors.pop(0)


def _busy() -> DialError:
    return DialError("Too Many Requests", code=20429, status=429, retryable=True)


async def _machine_answers(line: RefusingLine) -> list[tuple[str, str]]:
    shell = DialerShell(
        Codec.single_object(),
        OPTIONS,
        line,
        send=line.send,
        send_and_wait=line.send_and_wait,
        hang_up_backoff_s=BACKOFF,
    )
    shell.rebuild([published(answering_machine_policy="hang_up")])
    await shell.apply(place("m"))
    await shell.drain()
    await shell.apply(status("m", "in-progress", 5, answered_by="machine_start"))
    await shell.drain()
    return [entry for entry in line.entries if entry[0] == "hang_up"]


async def test_a_throttled_hang_up_is_tried_again_until_it_goes_through() -> None:
    assert await _machine_answers(RefusingLine(_busy(), _busy())) == [("hang_up", "CAm")] * 3


async def test_retries_of_a_hang_up_are_bounded() -> None:
    line = RefusingLine(*(_busy() for _ in range(10)))
    assert len(await _machine_answers(line)) == len(BACKOFF) + 1


@pytest.mark.parametrize(
    "error",
    [DialError("Unauthorized", code=20003, status=401, retryable=False), RuntimeError("adapter bug")],
)
async def test_a_hang_up_that_cannot_succeed_is_tried_once_and_never_escapes(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    assert await _machine_answers(RefusingLine(error)) == [("hang_up", "CAm")]
    assert "left to its time limit" in caplog.text
    assert "background work failed" not in caplog.text
