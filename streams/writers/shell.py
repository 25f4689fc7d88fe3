"""The imperative shell around a writer's decider: state from the table or the log, decide, emit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic

from schemas.codec import Codec
from streams.writers.spec import S, WriterSpec, aggregate_id

History = Callable[[str], Awaitable[list[Any]]]
"""The events the log already holds for one aggregate, oldest first (re-emitted ones included)."""

EmitEvent = Callable[[bytes, bytes], Awaitable[None]]
"""Send (key, value) to the events topic and wait until the broker has it."""


def fold_log(spec: WriterSpec[S], aggregate: str, events: Iterable[Any]) -> S:
    """The aggregate's state from its events in the log; a crash can leave an event there twice."""
    state = spec.initial(aggregate)
    for event in events:
        if event.seq > state.seq:
            state = spec.evolve(state, event)
    return state


class CommandHandler(Generic[S]):
    """Applies one decoded command to its aggregate; shared by the Faust agent and tests."""

    def __init__(self, spec: WriterSpec[S], codec: Codec, history: History) -> None:
        self._spec = spec
        self._codec = codec
        self._history = history

    async def handle(
        self,
        stored: bytes | None,
        command: Any,
        emit: EmitEvent,
        after_emit: Callable[[str], None] | None = None,
    ) -> bytes | None:
        """The aggregate's state to store after the command, or None when it did not change.

        ``stored`` is None on a table miss: the state is then folded from the events topic, so
        an aggregate whose events predate the table (or outran it in a crash) keeps its history.
        """
        spec = self._spec
        aggregate = aggregate_id(command, spec)
        if stored is not None:
            state = spec.load(stored)
        else:
            state = fold_log(spec, aggregate, await self._history(aggregate))
        # Off the event loop: a knowledge command reads and parses its document (up to 10 MiB),
        # and the loop also serves the agent writer and the group's heartbeats.
        events = await asyncio.to_thread(spec.decide, state, command)
        for event in events:
            await emit(aggregate.encode(), self._codec.encode(event))
            state = spec.evolve(state, event)
        if events and after_emit is not None:
            after_emit(aggregate)
        return spec.dump(state) if events or stored is None else None
