"""Stand-in sessions: what survives a reconnect (per handle) and the registry that holds them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from streams.standin.script import Script


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

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.sessions: dict[str, SessionState] = {}
        self._handles: dict[str, SessionState] = {}

    def open(self, script_key: str | None, setup: dict[str, Any]) -> SessionState:
        session_id = f"standin-{secrets.token_hex(8)}"
        state = SessionState(session_id=session_id, script_key=script_key, setup=setup)
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
