"""A back-off schedule is followed, then its last wait repeats."""

from __future__ import annotations

import pytest

from infra.backoff import retry_while, wait_before


def test_the_schedule_then_its_last_wait_for_ever() -> None:
    assert [wait_before((0.5, 1.0, 5.0), attempt) for attempt in range(5)] == [0.5, 1.0, 5.0, 5.0, 5.0]


@pytest.mark.asyncio
async def test_retry_while_waits_by_the_schedule_until_the_operation_succeeds() -> None:
    failures = [OSError("away")] * 3
    waits: list[float] = []

    async def op() -> str:
        if failures:
            raise failures.pop()
        return "done"

    result = await retry_while(
        op, lambda err: isinstance(err, OSError), (0.0, 0.001), lambda _, w: waits.append(w)
    )

    assert result == "done"
    assert waits == [0.0, 0.001, 0.001]


@pytest.mark.asyncio
async def test_retry_while_raises_what_is_not_retryable_at_once() -> None:
    waits: list[float] = []

    async def op() -> str:
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        await retry_while(op, lambda err: isinstance(err, OSError), (0.0,), lambda _, w: waits.append(w))
    assert waits == []
