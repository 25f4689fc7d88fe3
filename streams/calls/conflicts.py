"""Inputs that contradict the call they name: pure, so the shell can dead-letter them with the reason.

The decider ignores such inputs (they change nothing); this says why, so an integrator who
produced one, or a bug that did, is found through voice.deadletter.v1 instead of never.
"""

from __future__ import annotations

from schemas.calls import CallInput, CallReceived, ClockTicked, EndCall
from streams.calls.state import CallState


def conflict(state: CallState | None, input_: CallInput) -> str | None:
    """Why the fact ``input_`` contradicts the call it names, or None (no such call yet, too).

    Commands are not checked here: the decider answers a wrong one with a recorded
    ``CommandRejected``, which is what the API that sent it reads back.
    """
    if state is None or isinstance(input_, EndCall | ClockTicked):
        return None
    if input_.tenant_id != state.tenant_id:
        return f"call {input_.call_id} belongs to another tenant than {input_.tenant_id!r}"
    if isinstance(input_, CallReceived):
        theirs = (input_.direction, input_.agent_id, input_.agent_version)
        ours = (state.direction, state.agent_id, state.agent_version)
        if theirs != ours:
            # A repeated webhook names the same call the same way; this one names another.
            return f"CallReceived for call {input_.call_id} differs from the call received first"
    return None
