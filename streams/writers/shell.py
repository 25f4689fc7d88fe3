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

MAX_STATE_BYTES = 900_000
"""The most bytes of one aggregate's stored state. The table writes it as one changelog record,
and Faust's producer refuses a request over 1,000,000 bytes (``producer_max_request_size``): the
refusal crashed the whole writers process, and the re-delivered command crashed it again. The
100 kB left hold the key and the record's framing. The deciders keep their states far below
(``knowledge_writer.MAX_DOCUMENTS``, ``recent.RECENT_COMMANDS``); this is the last resort."""


class StateTooLargeError(ValueError):
    """A command would leave its aggregate's state over MAX_STATE_BYTES; nothing was emitted."""


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
        So is a stored state of an earlier format (``spec.load`` gives None), which is replaced.

        Raises StateTooLargeError, before emitting anything, when the state after the command
        would be over MAX_STATE_BYTES: the caller dead-letters the command.
        """
        spec = self._spec
        aggregate = aggregate_id(command, spec)
        state = spec.load(stored) if stored is not None else None
        folded = state is None
        if state is None:
            history = await self._history(aggregate)
            # Off the event loop, as deciding: a big knowledge base has thousands of events.
            state = await asyncio.to_thread(fold_log, spec, aggregate, history)
        # Off the event loop: a knowledge command reads and parses its document (up to 10 MiB),
        # and the loop also serves the agent writer and the group's heartbeats.
        events = await asyncio.to_thread(spec.decide, state, command)
        after = state
        for event in events:
            after = spec.evolve(after, event)
        data = spec.dump(after) if events or folded else None
        if data is not None and len(data) > MAX_STATE_BYTES:
            if events:
                raise StateTooLargeError(
                    f"{spec.name} {aggregate}: {type(command).__name__} would leave a state of "
                    f"{len(data)} bytes, over the {MAX_STATE_BYTES} a table record may hold; "
                    "nothing was emitted"
                )
            data = None  # nothing decided: the next command folds the log again
        for event in events:
            await emit(aggregate.encode(), self._codec.encode(event))
        if events and after_emit is not None:
            after_emit(aggregate)
        return data
