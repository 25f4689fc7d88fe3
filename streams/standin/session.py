"""Stand-in sessions: what survives a reconnect (per handle) and the registry that holds them."""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from streams.standin.script import Script

TIMING_MAX_ENTRIES = 200_000
"""Per session and list: a long-running stand-in with timings on stays bounded (~10 MB a session)."""


@dataclass(slots=True)
class Timing:
    """When audio went in and out, on the machine's monotonic clock (opt-in, for benchmarks).

    ``time.monotonic()`` is CLOCK_MONOTONIC on Linux, shared by every process on the machine,
    so a benchmark can line these times up with its own.
    """

    opened_at: float = field(default_factory=time.monotonic)
    connected_at: list[float] = field(default_factory=list)
    audio_in: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=TIMING_MAX_ENTRIES))
    """(receive time, PCM bytes) per caller audio message."""
    audio_out: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=TIMING_MAX_ENTRIES))
    """(time just before the send, utterance number, chunk index) per model audio chunk."""
    caller_started: list[float] = field(default_factory=list)
    utterances: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "opened_at": self.opened_at,
            "connected_at": list(self.connected_at),
            "audio_in": [list(entry) for entry in self.audio_in],
            "audio_out": [list(entry) for entry in self.audio_out],
            "caller_started": list(self.caller_started),
        }


@dataclass(slots=True, kw_only=True)
class SessionState:
    """One Live session across its connections; resuming by handle continues it."""

    session_id: str
    script_key: str | None
    setup: dict[str, Any]
    turn_index: int = 0
    greeted: bool = False
    transcript: list[tuple[str, str]] = field(default_factory=list)
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    handle_count: int = 0
    connections: int = 0
    resumed: int = 0
    timing: Timing | None = None

    def view(self) -> dict[str, Any]:
        """The JSON shape of `GET /sessions` (and `StandIn.sessions()`)."""
        return {
            "session_id": self.session_id,
            "script_key": self.script_key,
            "turn_index": self.turn_index,
            "transcript": [{"role": role, "text": text} for role, text in self.transcript],
            "tool_responses": list(self.tool_responses),
            "connections": self.connections,
            "resumed": self.resumed,
            "setup": self.setup,
        }


class Registry:
    """Scripts by key, sessions by id, and every resumption handle ever issued (in memory)."""

    def __init__(self, *, timings: bool = False) -> None:
        self.timings = timings
        self.scripts: dict[str, Script] = {}
        self.sessions: dict[str, SessionState] = {}
        self._handles: dict[str, SessionState] = {}

    def open(self, script_key: str | None, setup: dict[str, Any]) -> SessionState:
        session_id = f"standin-{secrets.token_hex(8)}"
        state = SessionState(session_id=session_id, script_key=script_key, setup=setup)
        if self.timings:
            state.timing = Timing()
        self.sessions[session_id] = state
        return state

    def resume(self, handle: str) -> SessionState | None:
        state = self._handles.get(handle)
        if state is not None:
            state.resumed += 1
        return state

    def new_handle(self, state: SessionState) -> str:
        # Earlier handles stay valid: a worker that crashed may hold any recent one.
        state.handle_count += 1
        handle = f"{state.session_id}.{state.handle_count}.{secrets.token_hex(4)}"
        self._handles[handle] = state
        return handle

    def script_for(self, state: SessionState) -> Script | None:
        return self.scripts.get(state.script_key) if state.script_key else None
