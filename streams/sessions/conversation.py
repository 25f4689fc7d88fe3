"""What one call's model has said and heard across its Live connections, and how the call ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from enum import StrEnum

from google.genai import types

from schemas import bridge
from schemas.call_media import AgentSpeechFinished, AgentSpeechStarted, TranscriptSegment
from schemas.calls import HangUpRequested
from streams.sessions.bridge_link import BridgeEnd
from streams.sessions.facts import Reporter
from streams.sessions.recovery import goodbye_pcm

log = logging.getLogger(__name__)

_BYTES_PER_MS_OUT = bridge.AGENT_RATE * 2 // 1000
_HANGUP_MARK = "hangup"
_TRANSFER_MARK = "transfer"
MARK_WAIT_S = 10.0
"""Longest a hang-up or transfer waits for the caller's phone to play what was sent before it."""
VOICEMAIL_REASON = "voicemail"
"""HangUpRequested.reason after a voicemail: one of END_REASONS, so the call ends with it."""


class Conversation:
    """The model's turn in progress, the transcript so far, a voicemail to leave, the hang-up."""

    def __init__(self, call_id: str, facts: Reporter, *, segments: int = 0, utterances: int = 0) -> None:
        self._call_id = call_id
        self._facts = facts
        self._turn = _Turn()
        self.transcript: list[str] = []
        self.stream_ms = 0
        """How far the caller's audio has got: stamps the speech and transcript facts."""
        self.segments = segments
        """The last transcript segment's index in the call (earlier sessions' included)."""
        self._utterances = utterances
        self._utterances_before = utterances  # started by the call's earlier sessions
        self._audio_seq = 0
        self.pending_hangup: str | None = None
        """Hang up with this reason once the model's goodbye (or voicemail message) has been said."""
        self.hangup_asked = asyncio.Event()
        """Set when ``end_call`` asks to hang up after the goodbye (the session makes sure it does)."""
        self.line_closed = False
        """A hang-up or transfer was sent to the edge: the line is going, send nothing more."""
        self._hangup_mark = asyncio.Event()
        self._transfer_mark = asyncio.Event()
        self._goodbye_owed = False
        self._turn_before_goodbye: _Turn | None = None
        self._tool_turn: _Turn | None = None  # the turn of the model's latest tool call
        self.spoken_with_tool_at: float | None = None
        """Loop time when the turn that called ``end_call``/``transfer_call``, having spoken before
        the call ("thanks for calling, goodbye" + the tool), ended: likely the goodbye already."""
        self.goodbye_said = asyncio.Event()
        """Set once the goodbye owed after ``end_call`` or ``transfer_call`` has been said."""
        self.awaiting_reply = False
        """A written turn was sent and the model's answer to it has not completed yet."""
        self.voicemail: str | None = None
        self.voicemail_known = asyncio.Event()
        self._voicemail_phase = _VoicemailPhase.NONE

    @property
    def spoken(self) -> bool:
        """Has the conversation begun (so a new session apologises rather than greets)?"""
        return self._utterances > self._utterances_before or bool(self.transcript)

    @property
    def caller_heard(self) -> bool:
        """Has the model transcribed the caller's words in the turn in progress?"""
        return bool(self._turn.caller_text)

    @property
    def quiet(self) -> bool:
        """No turn in progress and no answer awaited: the model can take a new instruction."""
        turn = self._turn
        return not (self.awaiting_reply or turn.utterance_id is not None or turn.agent_text)

    def request_voicemail(self, message: str) -> None:
        if self.voicemail is not None or not message:
            return
        log.info("call %s: leaving a voicemail", self._call_id)
        self.voicemail = message
        self._voicemail_phase = _VoicemailPhase.PENDING
        self.voicemail_known.set()

    @property
    def voicemail_pending(self) -> bool:
        return self._voicemail_phase is _VoicemailPhase.PENDING

    def voicemail_sent(self) -> str:
        """The message, now being asked of the model: its next spoken turn ends the call."""
        assert self.voicemail is not None
        self._voicemail_phase = _VoicemailPhase.SENT
        return self.voicemail

    def barge_in(self, utterance_id: str) -> None:
        # The edge already cleared; drop the rest of that utterance, if it still runs.
        # A barge-in over audio from a finished turn must not mute the next one.
        if utterance_id == self._turn.utterance_id:
            self._turn.barged_in = True

    def mark_reached(self, name: str) -> None:
        if name == _HANGUP_MARK:
            self._hangup_mark.set()
        elif name == _TRANSFER_MARK:
            self._transfer_mark.set()

    async def on_content(
        self, link: BridgeEnd, content: types.LiveServerContent, audio: bytes | None
    ) -> None:
        turn = self._turn
        if content.input_transcription is not None and content.input_transcription.text:
            # The transcription streams while the caller speaks: its first and last pieces
            # bound the caller's words on the stream's clock.
            turn.caller_text.append(content.input_transcription.text)
            turn.caller_started_ms = (
                self.stream_ms if turn.caller_started_ms is None else turn.caller_started_ms
            )
            turn.caller_ended_ms = self.stream_ms
        if content.output_transcription is not None and content.output_transcription.text:
            turn.agent_text.append(content.output_transcription.text)
            turn.agent_started_ms = self.stream_ms if turn.agent_started_ms is None else turn.agent_started_ms
        await self.on_audio(link, audio)
        if content.interrupted:
            if self._turn.utterance_id is not None and not self._turn.barged_in:
                await link.send(bridge.ClearPlayback())  # the edge records AgentInterrupted
            self._turn.barged_in = True
        if content.turn_complete:
            await self._finish_turn(link)

    async def on_audio(self, link: BridgeEnd, audio: bytes | None) -> None:
        """Model speech towards the caller, unless the caller has barged in on this turn."""
        if audio and not self._turn.barged_in:
            await self._play(link, audio)

    async def _play(self, link: BridgeEnd, audio: bytes) -> None:
        if self._turn.utterance_id is None:
            self._utterances += 1
            self._turn.utterance_id = f"{self._call_id}:u{self._utterances}"
            self._turn.agent_started_ms = self.stream_ms
            await link.send(bridge.BeginUtterance(utterance_id=self._turn.utterance_id))
            await self._facts.report(
                AgentSpeechStarted, utterance_id=self._turn.utterance_id, stream_ms=self.stream_ms
            )
        for start in range(0, len(audio), bridge.MAX_AUDIO_BYTES):
            chunk = audio[start : start + bridge.MAX_AUDIO_BYTES]
            await link.send(bridge.AgentAudio(seq=self._audio_seq, pcm=chunk))
            self._audio_seq += 1
            self._turn.generated_bytes += len(chunk)

    async def _finish_turn(self, link: BridgeEnd) -> None:
        turn, self._turn = self._turn, _Turn()
        self.awaiting_reply = False
        mark_wait_s = MARK_WAIT_S
        spoke = turn.spoke
        if self._voicemail_phase is _VoicemailPhase.SENT and spoke:
            # The message has been said: hang up once it has played out on the line.
            self._voicemail_phase = _VoicemailPhase.DONE
            self.pending_hangup = VOICEMAIL_REASON
            mark_wait_s += turn.generated_bytes / _BYTES_PER_MS_OUT / 1000
        await self._transcribe_turn(turn)
        if turn.utterance_id is not None:
            await link.send(bridge.PlayMark(name=turn.utterance_id))
            if not turn.barged_in:
                played = turn.generated_bytes // _BYTES_PER_MS_OUT
                await self._facts.report(
                    AgentSpeechFinished, utterance_id=turn.utterance_id, played_ms=played
                )
        if self._goodbye_owed and spoke and turn is not self._turn_before_goodbye:
            self._goodbye_owed = False
            self.goodbye_said.set()
        elif self._goodbye_owed and spoke:
            self.spoken_with_tool_at = asyncio.get_running_loop().time()
        # end_call's hang-up waits for the goodbye: the turn that called it may end first.
        if self.pending_hangup is not None and not self._goodbye_owed:
            await self._hang_up(link, self.pending_hangup, mark_wait_s=mark_wait_s)

    async def abandon_turn(self, link: BridgeEnd) -> None:
        """The model's turn died with its connection: keep what was said, end the utterance."""
        turn, self._turn = self._turn, _Turn()
        self.awaiting_reply = False
        if self._voicemail_phase is _VoicemailPhase.SENT:
            self._voicemail_phase = _VoicemailPhase.PENDING  # said again on the next connection
        await self._transcribe_turn(turn)
        if turn.utterance_id is not None:
            await link.send(bridge.PlayMark(name=turn.utterance_id))
            if not turn.barged_in:
                # The utterance is over, cut short: without this the call's state kept it
                # speaking, and its silence timer counted the line as busy.
                played = turn.generated_bytes // _BYTES_PER_MS_OUT
                await self._facts.report(
                    AgentSpeechFinished, utterance_id=turn.utterance_id, played_ms=played
                )

    async def keep_unfinished_turn(self) -> None:
        """The call is over mid-turn (hung up, stream stopped): what was said still goes in the
        transcript. Nothing goes to the line, which has gone."""
        turn, self._turn = self._turn, _Turn()
        await self._transcribe_turn(turn)

    async def _transcribe_turn(self, turn: _Turn) -> None:
        now = self.stream_ms
        caller_start = turn.caller_started_ms if turn.caller_started_ms is not None else now
        await self._transcribe("caller", turn.caller_text, caller_start, turn.caller_ended_ms or now)
        agent_start = turn.agent_started_ms if turn.agent_started_ms is not None else now
        # The agent's audio lasts what was generated from its start (played at real time).
        spoken_ms = turn.generated_bytes // _BYTES_PER_MS_OUT
        await self._transcribe(
            "agent", turn.agent_text, agent_start, agent_start + spoken_ms if spoken_ms else now
        )

    async def _transcribe(self, speaker: str, parts: list[str], start_ms: int, end_ms: int) -> None:
        text = "".join(parts).strip()
        if not text:
            return
        self.transcript.append(f"{speaker}: {text}")
        self.segments += 1
        await self._facts.report(
            TranscriptSegment,
            speaker=speaker,
            text=text,
            final=True,
            start_ms=start_ms,
            end_ms=max(start_ms, end_ms),
            segment_index=self.segments,
        )

    async def give_up(self, link: BridgeEnd) -> None:
        """The model cannot be reached: say goodbye in the worker's own voice and hang up."""
        log.warning("call %s: giving up on the model; ending the call", self._call_id)
        pcm = await goodbye_pcm()
        if pcm:
            self._turn = _Turn()
            await self._play(link, pcm)
            await link.send(bridge.PlayMark(name=self._turn.utterance_id or "goodbye"))
        listener = asyncio.create_task(self._listen_for_marks(link))
        try:
            await self._hang_up(link, "failed", requested_by="system")
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen_for_marks(self, link: BridgeEnd) -> None:
        """Without a model session nothing reads the bridge; the hang-up still waits for its mark."""
        while True:
            message = await link.receive()
            if isinstance(message, bridge.MarkReached) and message.name == _HANGUP_MARK:
                self._hangup_mark.set()
            elif isinstance(message, bridge.StreamStopped):
                self._hangup_mark.set()
                return

    def tool_called(self) -> None:
        """The model asked for a tool in its turn in progress (which may end before the answer)."""
        self._tool_turn = self._turn

    def hang_up_after_goodbye(self, reason: str) -> None:
        """The model ended the call (``end_call``): hang up once its goodbye has been said."""
        self._owe_goodbye()
        self.pending_hangup = reason
        self.hangup_asked.set()

    def transfer_after_goodbye(self) -> None:
        """The model transfers the call (``transfer_call``): the session sends the transfer once
        its goodbye ("transferring you now") has been said."""
        self._owe_goodbye()

    def _owe_goodbye(self) -> None:
        """Called before the tool is answered: the model's goodbye is its next turn that speaks
        and ends. A turn already speaking now is not: some models end the turn that called the
        tool with a turnComplete of its own, then answer the tool's response in a new turn."""
        turn = self._turn
        self._goodbye_owed = True
        self._turn_before_goodbye = turn if turn.utterance_id is not None or turn.agent_text else None
        self.spoken_with_tool_at = None
        calling = self._tool_turn
        if calling is not None and calling is not turn and calling.spoke:
            # The calling turn's turnComplete came before the answer (it need not wait for it):
            # its speech may be the goodbye, as when it ends afterwards (``_finish_turn``).
            self.spoken_with_tool_at = asyncio.get_running_loop().time()
        self.goodbye_said.clear()

    @property
    def goodbye_owed(self) -> bool:
        """``end_call`` or ``transfer_call`` was answered and the model has not said its goodbye."""
        return self._goodbye_owed

    async def play_out_before_transfer(self, link: BridgeEnd) -> None:
        """Let the caller's phone play what it has been sent (within MARK_WAIT_S): a transfer
        ends the stream, and audio still queued on the line would never be heard."""
        if self._audio_seq == 0:
            return  # nothing was ever sent to play
        self._transfer_mark.clear()
        await link.send(bridge.PlayMark(name=_TRANSFER_MARK))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._transfer_mark.wait(), timeout=MARK_WAIT_S)

    async def hang_up_if_still_pending(self, link: BridgeEnd) -> None:
        """The model never finished a turn after asking to hang up: hang up now, once it is quiet."""
        if self.pending_hangup is not None and self.quiet and not self.line_closed:
            await self._hang_up(link, self.pending_hangup)

    async def _hang_up(
        self, link: BridgeEnd, reason: str, *, requested_by: str = "agent", mark_wait_s: float = MARK_WAIT_S
    ) -> None:
        self.pending_hangup = None
        await link.send(bridge.PlayMark(name=_HANGUP_MARK))
        with contextlib.suppress(TimeoutError):  # let the caller hear the goodbye, within reason
            await asyncio.wait_for(self._hangup_mark.wait(), timeout=mark_wait_s)
        # Acknowledged first, so the call log records who hung up before the stream stops.
        await self._facts.report(HangUpRequested, requested_by=requested_by, reason=reason, wait=True)
        self.line_closed = True
        await link.send(bridge.HangUp(reason="agent_hung_up" if requested_by == "agent" else reason))


class _VoicemailPhase(StrEnum):
    NONE = "none"
    PENDING = "pending"
    """Requested; to be sent once the model is quiet."""
    SENT = "sent"
    """The instruction went to the model; its next spoken turn is the message."""
    DONE = "done"


@dataclass
class _Turn:
    """What the model has said and heard in the current turn."""

    utterance_id: str | None = None
    generated_bytes: int = 0
    barged_in: bool = False
    caller_text: list[str] = field(default_factory=list)
    agent_text: list[str] = field(default_factory=list)
    caller_started_ms: int | None = None
    """Stream ms of the caller's first transcribed words this turn (the last: ``caller_ended_ms``)."""
    caller_ended_ms: int | None = None
    agent_started_ms: int | None = None
    """Stream ms of the agent's first audio (or words) this turn."""

    @property
    def spoke(self) -> bool:
        return self.utterance_id is not None or bool("".join(self.agent_text).strip())
