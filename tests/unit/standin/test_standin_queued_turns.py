"""Turns that arrive while the stand-in is answering are answered afterwards, as what they were."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.standin import wire
from streams.standin.conversation import Behaviour, Conversation
from streams.standin.script import TEXT_REPLY, Script, Turn
from streams.standin.session import SessionState

_SCRIPT = Script(turns=(Turn(caller="I want a table", reply="Sure, for how many?"),))


class GatedOutbox:
    """Records what the stand-in sends; holds the first send until opened, so a turn stays busy."""

    def __init__(self, turns: int) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.turns_left = turns
        self.done = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        """Record `message`, blocking until the gate opens."""
        self.waiting.set()
        await self.gate.wait()
        self.sent.append(message)
        if message.get("serverContent", {}).get("turnComplete"):
            self.turns_left -= 1
            if self.turns_left == 0:
                self.done.set()

    async def close(self, code: int, reason: str) -> None:
        """The stand-in closing the connection is not expected here."""
        raise AssertionError(f"closed {code} {reason}")

    def input_transcriptions(self) -> list[str]:
        """The caller words the stand-in claimed to hear."""
        return [
            m["serverContent"]["inputTranscription"]["text"]
            for m in self.sent
            if "inputTranscription" in m.get("serverContent", {})
        ]


def _conversation(out: GatedOutbox, state: SessionState) -> Conversation:
    """A conversation with manual activity detection and no barge-in (NO_INTERRUPTION)."""
    setup = wire.Setup(
        model="m",
        system_instruction="",
        resumption_enabled=False,
        resume_handle=None,
        auto_vad=False,
        interrupts=False,
        silence_ms=None,
    )
    return Conversation(
        state=state,
        setup=setup,
        script=lambda: _SCRIPT,
        new_handle=lambda _state: "h",
        out=out,
        behaviour=Behaviour(pace=0.0),
    )


async def _answer_all(out: GatedOutbox, conversation: Conversation) -> None:
    """Open the gate and wait until every expected turn is complete."""
    out.gate.set()
    await asyncio.wait_for(out.done.wait(), 30)
    await conversation.close()


async def test_a_text_turn_queued_behind_an_answer_is_answered_as_text() -> None:
    out, state = GatedOutbox(turns=2), SessionState(session_id="s1", script_key="k1", setup={})
    conversation = _conversation(out, state)
    await conversation.handle(wire.TextTurn(text="Greet the caller: Hello there"))
    await out.waiting.wait()  # the greeting is being spoken
    await conversation.handle(wire.TextTurn(text="The caller has been silent. Check in."))
    await _answer_all(out, conversation)

    assert out.input_transcriptions() == []  # the caller said nothing
    assert state.turn_index == 0  # the script's first turn is still the caller's to take
    assert ("client", "The caller has been silent. Check in.") in state.transcript
    assert state.transcript[-1] == ("model", TEXT_REPLY)


async def test_caller_speech_queued_behind_an_answer_still_plays_the_script() -> None:
    out, state = GatedOutbox(turns=2), SessionState(session_id="s2", script_key="k2", setup={})
    conversation = _conversation(out, state)
    await conversation.handle(wire.TextTurn(text="Greet the caller: Hello there"))
    await out.waiting.wait()
    await conversation.handle(wire.ActivityStart())
    await conversation.handle(wire.ActivityEnd())
    await _answer_all(out, conversation)

    assert out.input_transcriptions() == ["I want a table"]
    assert state.turn_index == 1
    assert state.transcript[-1] == ("model", "Sure, for how many?")
