"""One Live connection's behaviour: hear the caller, answer from the script, stop when interrupted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from streams.standin import wire
from streams.standin.hearing import Heard, Hearing
from streams.standin.script import (
    TEXT_REPLY,
    TOOL_TIMEOUT_REPLY,
    Script,
    fill_reply,
    greeting_request,
    scripted_turn,
    verbatim_request,
)
from streams.standin.session import SessionState
from streams.standin.voice import OUTPUT_RATE, reply_pcm

_log = logging.getLogger("streams.standin")
_TOKENS_PER_S = 25  # Gemini counts audio at 25 tokens per second
_TOKENS_PER_WORD = 10  # a spoken word lasts about 0.4 s


class Outbox(Protocol):
    async def send(self, message: dict[str, Any]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Pending:
    """A turn that arrived while the stand-in was answering, kept as what it was."""

    heard_ms: int
    from_audio: bool
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """How the stand-in talks: `pace` 1.0 is real time, 0 as fast as possible; each answer's
    first audio comes `latency_ms` after the turn is taken (a model's time to first audio)."""

    pace: float = 1.0
    chunk_ms: int = 40
    silence_ms: int = 500
    voice: str = "en-us"
    latency_ms: int = 0


class Conversation:
    """Turn-taking for one connection; the session state it mutates outlives it."""

    def __init__(
        self,
        *,
        state: SessionState,
        setup: wire.Setup,
        script: Callable[[], Script | None],
        new_handle: Callable[[SessionState], str],
        out: Outbox,
        behaviour: Behaviour,
    ) -> None:
        self.state = state
        self._setup = setup
        self._script = script
        self._new_handle = new_handle
        self._out = out
        self._behaviour = behaviour
        self._hearing = self._new_hearing(16000)
        self._manual_ms: int | None = None  # caller audio since activityStart (manual VAD)
        self._task: asyncio.Task[None] | None = None
        self._queued: deque[_Pending] = deque()
        self._tool_ids: list[str] = []
        self._tool_answers: list[dict[str, Any]] = []
        self._tools_done = asyncio.Event()
        self._closing = False

    async def handle(self, message: wire.ClientMessage) -> None:
        match message:
            case wire.Audio(pcm=pcm, rate=rate):
                await self._audio(pcm, rate)
            case wire.ActivityStart():
                self._manual_ms = 0
                await self._caller_started()
            case wire.ActivityEnd():
                heard = self._manual_ms or 0
                self._manual_ms = None
                self._caller_stopped(heard, from_audio=True)
            case wire.AudioStreamEnd():
                for _ in self._hearing.finish():
                    self._caller_stopped(self._hearing.voiced_ms, from_audio=True)
            case wire.TextTurn(text=text, complete=complete):
                if complete:
                    self._caller_stopped(0, from_audio=False, text=text)
            case wire.ToolResponse(responses=responses):
                self._tool_response(list(responses))
            case wire.Setup():
                raise wire.ClientMessageError("setup may only be sent once")
            case wire.Ignored(what=what):
                _log.debug("offline Gemini stand-in ignores %s", what)

    async def close(self) -> None:
        """The connection is gone: stop talking (the session state stays resumable)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def send_resumption_update(self) -> None:
        if self._setup.resumption_enabled:
            await self._out.send(wire.resumption_update(self._new_handle(self.state)))

    # --- hearing ---------------------------------------------------------------------------------

    def _new_hearing(self, rate: int) -> Hearing:
        silence = self._setup.silence_ms or self._behaviour.silence_ms
        return Hearing(rate=rate, hangover_ms=silence)

    async def _audio(self, pcm: bytes, rate: int) -> None:
        timing = self.state.timing
        if timing is not None:
            timing.audio_in.append((time.monotonic(), len(pcm)))
        if not self._setup.auto_vad:
            if self._manual_ms is not None:
                self._manual_ms += len(pcm) * 1000 // (2 * rate)
            return
        if rate != self._hearing.rate:
            self._hearing = self._new_hearing(rate)
        for event in self._hearing.feed(pcm):
            if event is Heard.STARTED:
                if timing is not None:
                    timing.caller_started.append(time.monotonic())
                await self._caller_started()
            else:
                self._caller_stopped(self._hearing.voiced_ms, from_audio=True)

    async def _caller_started(self) -> None:
        if self._task is not None and not self._task.done() and self._setup.interrupts:
            _log.info("offline Gemini stand-in %s: caller barged in", self.state.session_id)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _caller_stopped(self, heard_ms: int, *, from_audio: bool, text: str = "") -> None:
        if self._task is not None and not self._task.done():
            # Text never barges in, nor does speech under NO_INTERRUPTION: answer it once the
            # current turn is over, as the kind of turn it was (a text turn is no caller speech).
            self._queued.append(_Pending(heard_ms, from_audio, text))
            return
        self._task = asyncio.create_task(self._turns(heard_ms, from_audio, text))

    # --- answering -------------------------------------------------------------------------------

    async def _turns(self, heard_ms: int, from_audio: bool, text: str) -> None:
        await self._one_turn(heard_ms, from_audio, text)
        while self._queued:
            turn = self._queued.popleft()
            await self._one_turn(turn.heard_ms, turn.from_audio, turn.text)

    async def _one_turn(self, heard_ms: int, from_audio: bool, text: str) -> None:
        said: list[str] = []
        try:
            await self._answer(heard_ms, from_audio, text, said)
        except asyncio.CancelledError:
            if not self._closing:
                await self._interrupted(said, heard_ms)
            raise
        await self._out.send(wire.generation_complete())
        await self._finish_turn(said, heard_ms)

    async def _answer(self, heard_ms: int, from_audio: bool, text: str, said: list[str]) -> None:
        state, script = self.state, self._script()
        verbatim = None if from_audio else verbatim_request(text)
        if verbatim is not None:
            # Asked to say a text word for word (a voicemail): say it and nothing else.
            state.transcript.append(("client", text))
            await self._speak(verbatim, said)
            return
        greeting = (
            None if from_audio or state.greeted else (script and script.greeting) or greeting_request(text)
        )
        if greeting:
            state.greeted = True
            state.transcript.append(("client", text))
            await self._speak(greeting, said)
            return
        if not from_audio:
            # A written prompt (an apology request after a reconnect, say) is not a caller turn:
            # it answers with a labelled line and leaves the script where it was.
            state.transcript.append(("client", text))
            await self._speak(TEXT_REPLY, said)
            return
        turn = scripted_turn(script, state.turn_index)
        state.turn_index += 1
        state.transcript.append(("caller", turn.caller))
        _log.info("offline Gemini stand-in %s: turn %d", state.session_id, state.turn_index)
        await self._out.send(wire.input_transcription(turn.caller))
        if turn.fail_with is not None:
            await self._out.close(turn.fail_with, "offline Gemini stand-in: scripted failure")
            return
        if turn.reply:
            await self._speak(turn.reply, said)
        if turn.tool_calls:
            answers = await self._call_tools(turn.tool_calls, script)
            reply = TOOL_TIMEOUT_REPLY if answers is None else fill_reply(turn.after_tool_reply, answers)
            await self._speak(reply, said)

    async def _call_tools(self, calls: tuple[Any, ...], script: Script | None) -> list[dict[str, Any]] | None:
        base = f"{self.state.session_id}-t{self.state.turn_index}"
        self._tool_ids = [f"{base}-{i}" for i in range(len(calls))]
        self._tool_answers, self._tools_done = [], asyncio.Event()
        await self._out.send(
            wire.tool_call([(i, c.name, c.args) for i, c in zip(self._tool_ids, calls, strict=True)])
        )
        timeout = script.tool_timeout_s if script is not None else 30.0
        try:
            await asyncio.wait_for(self._tools_done.wait(), timeout)
        except TimeoutError:
            _log.warning("offline Gemini stand-in %s: tool response timed out", self.state.session_id)
            self._tool_ids = []
            return None
        return self._tool_answers

    def _tool_response(self, responses: list[dict[str, Any]]) -> None:
        self.state.tool_responses.extend(responses)
        for response in responses:
            if response.get("id") in self._tool_ids:
                self._tool_ids.remove(response["id"])
                self._tool_answers.append(response)
        if not self._tool_ids:
            self._tools_done.set()

    async def _speak(self, text: str, said: list[str]) -> None:
        if self._behaviour.latency_ms:
            await asyncio.sleep(self._behaviour.latency_ms / 1000)
        pcm = await asyncio.to_thread(reply_pcm, text, self._behaviour.voice)
        chunk = OUTPUT_RATE * 2 * self._behaviour.chunk_ms // 1000
        pieces = [pcm[i : i + chunk] for i in range(0, len(pcm), chunk)] or [b""]
        words, told = text.split(), 0
        loop, started = asyncio.get_running_loop(), asyncio.get_running_loop().time()
        timing = self.state.timing
        if timing is not None:
            timing.utterances += 1
        for n, piece in enumerate(pieces, start=1):
            due = round(len(words) * n / len(pieces))
            if due > told:
                fragment = " ".join(words[told:due])
                await self._out.send(wire.output_transcription(fragment if not said else " " + fragment))
                said.extend(words[told:due])
                told = due
            if timing is not None:
                timing.audio_out.append((time.monotonic(), timing.utterances, n - 1))
            await self._out.send(wire.audio_chunk(piece))
            ahead = started + n * self._behaviour.chunk_ms / 1000 * self._behaviour.pace - loop.time()
            await asyncio.sleep(max(0.0, ahead))

    async def _interrupted(self, said: list[str], heard_ms: int) -> None:
        # Runs inside the cancelled task: shield the closing messages from the cancellation.
        if self._tool_ids:
            await asyncio.shield(self._out.send(wire.tool_call_cancellation(self._tool_ids)))
            self._tool_ids = []
        await asyncio.shield(self._out.send(wire.interrupted()))
        await asyncio.shield(self._finish_turn(said, heard_ms))

    async def _finish_turn(self, said: list[str], heard_ms: int) -> None:
        if said:
            self.state.transcript.append(("model", " ".join(said)))
        response_tokens = len(said) * _TOKENS_PER_WORD
        prompt_tokens = heard_ms * _TOKENS_PER_S // 1000 + 8
        await self._out.send(wire.turn_complete(prompt_tokens, response_tokens))
        await self.send_resumption_update()
