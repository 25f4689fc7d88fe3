"""One call's Gemini Live session, bridged to the call's edge node (the worker's hot path)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from google.genai import types

from schemas import bridge
from schemas.call_media import AgentSpeechFinished, AgentSpeechStarted, TranscriptSegment
from schemas.call_session import (
    GeminiSessionClosed,
    GeminiSessionOpened,
    GeminiSessionResumed,
    ResumptionHandleUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallRequested,
    UsageReported,
)
from schemas.calls import CallInput, HangUpRequested, TransferRequested
from streams.sessions.bridge_link import Bridge, BridgeClosed, BridgeLost
from streams.sessions.facts import FactFactory
from streams.sessions.live_config import SessionPlan, live_connect_config, voicemail_prompt
from streams.sessions.recovery import (
    APOLOGY_PROMPT,
    ModelFailure,
    backoff_s,
    classify,
    goodbye_pcm,
    malformed,
)
from streams.sessions.tools import ToolError, ToolRunner

log = logging.getLogger(__name__)

LiveSession = Any  # google.genai.live.AsyncSession; typed loosely, the SDK's own hints are partial
LiveConnector = Callable[[str, dict[str, Any]], AbstractAsyncContextManager[LiveSession]]
_AUDIO_MIME = f"audio/pcm;rate={bridge.CALLER_RATE}"
_BYTES_PER_MS_OUT = bridge.AGENT_RATE * 2 // 1000
BridgeFactory = Callable[[str, str], Bridge]


class SessionOutcome(StrEnum):
    """How a session run ended; the manager restarts none of them (the call's state decides)."""

    ENDED = "ended"
    """The stream stopped or the agent hung up."""
    REFUSED = "refused"
    """The edge refused the bridge token (call gone, token expired): nothing to talk to."""
    GAVE_UP = "gave_up"
    """The model or the bridge could not be reached after retries; the call was ended."""


class FactSink(Protocol):
    """Where session facts go: the call inputs topic (a fake in unit tests)."""

    async def publish(self, record: CallInput, *, wait: bool = False) -> None:
        """Send a fact; with wait, return only once the broker has acknowledged it."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTarget:
    """Which call, where its audio is, and how its session is set up."""

    tenant_id: str
    call_id: str
    bridge_url: str
    bridge_token: str
    plan: SessionPlan
    worker_id: str
    greet: bool = True


class _Ended(Exception):  # noqa: N818 - a signal, not an error
    """The call is over (stream stopped, hung up): stop everything, no reconnect."""


class CallSession:
    """Runs until the call's stream ends; reconnects the Live session across goAway and errors."""

    def __init__(
        self,
        target: SessionTarget,
        *,
        connect_live: LiveConnector,
        facts: FactSink,
        tools: ToolRunner,
        max_reconnects: int = 3,
        bridge_factory: BridgeFactory = Bridge,
    ) -> None:
        self._target = target
        self._connect_live = connect_live
        self._facts = facts
        self._tools = tools
        self._max_reconnects = max_reconnects
        self._bridge_factory = bridge_factory
        self._make = FactFactory(target.tenant_id, target.call_id)
        self.handle: str | None = target.plan.resumption_handle
        self._transcript: list[str] = []
        self._turn = _Turn()
        self._stream_ms = 0
        self._segments = 0
        self._utterances = 0
        self._audio_seq = 0
        self._pending_hangup: str | None = None
        self._hangup_mark = asyncio.Event()
        self._apologise = False
        self._awaiting_reply = False
        """A written turn was sent and the model's answer to it has not completed yet."""
        self._voicemail: str | None = None
        self._voicemail_known = asyncio.Event()
        self._voicemail_phase = _VoicemailPhase.NONE
        if target.plan.voicemail_message:
            self.request_voicemail(target.plan.voicemail_message)

    def request_voicemail(self, message: str) -> None:
        """An answering machine took the call: say message once the line is free, then hang up.

        From now on the machine's audio is no longer passed to the model. Repeats are ignored.
        """
        if self._voicemail is not None or not message:
            return
        log.info("call %s: leaving a voicemail", self._target.call_id)
        self._voicemail = message
        self._voicemail_phase = _VoicemailPhase.PENDING
        self._voicemail_known.set()

    async def run(self) -> SessionOutcome:
        """Connect the bridge, then keep a Live session going until the call ends."""
        link = self._bridge_factory(self._target.bridge_url, self._target.bridge_token)
        try:
            await link.connect()
        except BridgeClosed as refused:
            # A token for a call the edge no longer has: record it, never retry it.
            log.warning("call %s: bridge refused: %s", self._target.call_id, refused)
            await self._closed("call_ended", refused.code)
            return SessionOutcome.REFUSED
        try:
            return await self._converse(link)
        except BridgeLost as lost:
            log.warning("call %s: bridge lost: %s", self._target.call_id, lost)
            await self._closed("error", lost.code)
            await self._publish(
                self._make.make(HangUpRequested, requested_by="system", reason="failed"), wait=True
            )
            return SessionOutcome.GAVE_UP
        except (_Ended, BridgeClosed) as ended:
            log.info("call %s: session ends (%s)", self._target.call_id, ended)
            await self._closed("call_ended", None)
            return SessionOutcome.ENDED
        finally:
            with contextlib.suppress(Exception):
                await link.close()

    async def _converse(self, link: Bridge) -> SessionOutcome:
        failures = 0
        while True:
            try:
                await self._one_connection(link)
                failures = 0  # a planned reconnect (goAway)
                continue
            except ModelFailure as failure:
                failures += 1
                log.warning("call %s: model connection failed (%s)", self._target.call_id, failure)
                await self._closed("error", failure.code)
                await self._abandon_turn(link)
                if failure.in_setup and self.handle is not None and (failures > 1 or failure.code == 1008):
                    self.handle = None  # resumption failed: a fresh session, primed with the transcript
                if failure.final or failures > (1 if failure.quota else self._max_reconnects):
                    await self._give_up(link)
                    return SessionOutcome.GAVE_UP
                self._apologise = self._apologise or self._spoken
            await asyncio.sleep(backoff_s(failures))

    @property
    def _spoken(self) -> bool:
        """Has the conversation begun (so a new session apologises rather than greets)?"""
        return self._utterances > 0 or bool(self._transcript)

    async def _one_connection(self, link: Bridge) -> None:
        plan = replace(self._target.plan, resumption_handle=self.handle)
        fresh = self.handle is None and self._spoken
        if fresh:
            plan = replace(plan, transcript_so_far=tuple(self._transcript))
        model = plan.config.model
        opened = False
        try:
            async with self._connect_live(model, live_connect_config(plan)) as session:
                opened = True
                await self._announce(model, fresh=fresh)
                await self._prompt(session, plan)
                await self._pump(link, session)
        except (_Ended, BridgeClosed, ModelFailure):
            raise
        except Exception as err:
            failure = classify(err, in_setup=not opened)
            if failure is None:
                raise
            raise failure from err

    async def _prompt(self, session: LiveSession, plan: SessionPlan) -> None:
        """Greet on the call's first session; apologise on a session that replaces a failed one."""
        if self._voicemail is not None:
            self._apologise = False
            return  # no greeting nor apology for a machine: _leave_voicemail speaks instead
        if self._apologise:
            self._apologise = False
            text = APOLOGY_PROMPT
        elif self._target.greet and plan.config.greeting and not self._spoken:
            text = f"Greet the caller: {plan.config.greeting}"
        else:
            return
        await self._say_to_model(session, text)

    async def _say_to_model(self, session: LiveSession, text: str) -> None:
        self._awaiting_reply = True
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text=text)]), turn_complete=True
        )

    async def _pump(self, link: Bridge, session: LiveSession) -> None:
        uplink = asyncio.create_task(self._uplink(link, session))
        downlink = asyncio.create_task(self._downlink(link, session))
        voicemail = asyncio.create_task(self._leave_voicemail(session))
        tasks = (uplink, downlink, voicemail)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise _Ended, BridgeClosed or the model's failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _leave_voicemail(self, session: LiveSession) -> None:
        """Once a voicemail is requested and the model is quiet, ask it to say the message.

        The turn that answers it ends with the hang-up (``_finish_turn``). Never returns: the
        pump stops when the uplink or the downlink does.
        """
        await self._voicemail_known.wait()
        while self._voicemail_phase is _VoicemailPhase.PENDING:
            if self._awaiting_reply or self._turn.utterance_id is not None or self._turn.agent_text:
                await asyncio.sleep(0.02)  # let the turn in progress finish first
                continue
            assert self._voicemail is not None
            self._voicemail_phase = _VoicemailPhase.SENT
            await self._say_to_model(session, voicemail_prompt(self._voicemail))
        await asyncio.Future()

    async def _announce(self, model: str, *, fresh: bool) -> None:
        worker = self._target.worker_id
        if self.handle is not None or fresh:
            await self._publish(
                self._make.make(
                    GeminiSessionResumed,
                    resumption_handle=self.handle or "",
                    worker_id=worker,
                    fresh_session=fresh,
                )
            )
        else:
            await self._publish(
                self._make.make(GeminiSessionOpened, session_id=None, model=model, worker_id=worker)
            )

    async def _abandon_turn(self, link: Bridge) -> None:
        """The model's turn died with its connection: keep what was said, end the utterance."""
        turn, self._turn = self._turn, _Turn()
        self._awaiting_reply = False
        if self._voicemail_phase is _VoicemailPhase.SENT:
            self._voicemail_phase = _VoicemailPhase.PENDING  # said again on the next connection
        await self._transcribe("caller", turn.caller_text)
        await self._transcribe("agent", turn.agent_text)
        if turn.utterance_id is not None:
            await link.send(bridge.PlayMark(name=turn.utterance_id))

    async def _give_up(self, link: Bridge) -> None:
        """The model cannot be reached: say goodbye in the worker's own voice and hang up."""
        log.warning("call %s: giving up on the model; ending the call", self._target.call_id)
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

    async def _listen_for_marks(self, link: Bridge) -> None:
        """Without a model session nothing reads the bridge; the hang-up still waits for its mark."""
        while True:
            message = await link.receive()
            if isinstance(message, bridge.MarkReached) and message.name == _HANGUP_MARK:
                self._hangup_mark.set()
            elif isinstance(message, bridge.StreamStopped):
                self._hangup_mark.set()
                return

    async def _uplink(self, link: Bridge, session: LiveSession) -> None:
        """Caller audio into the session; edge notices into session state."""
        while True:
            message = await link.receive()
            match message:
                case bridge.CallerAudio(pcm=pcm, stream_ms=stream_ms):
                    self._stream_ms = stream_ms
                    if self._voicemail is not None:
                        continue  # a machine: the model must not answer its greeting or beep
                    await session.send_realtime_input(audio=types.Blob(data=pcm, mime_type=_AUDIO_MIME))
                case bridge.BargeIn(utterance_id=utterance_id):
                    # The edge already cleared; drop the rest of that utterance, if it still runs.
                    # A barge-in over audio from a finished turn must not mute the next one.
                    if utterance_id == self._turn.utterance_id:
                        self._turn.barged_in = True
                case bridge.MarkReached(name=name):
                    if name == _HANGUP_MARK:
                        self._hangup_mark.set()
                case bridge.StreamStopped(reason=reason):
                    raise _Ended(f"stream stopped: {reason}")
                case bridge.Hello() | bridge.Dtmf():
                    pass

    async def _downlink(self, link: Bridge, session: LiveSession) -> None:
        """Model messages to the bridge and to facts; returns on goAway (planned reconnect)."""
        while True:  # receive() ends at every turnComplete
            messages = session.receive()
            while True:
                try:
                    message = await anext(messages)
                except StopAsyncIteration:
                    break
                except Exception as err:  # the SDK's parse errors are ValueError, TypeError...
                    raise (classify(err) or malformed(err)) from err
                if await self._on_message(link, session, message):
                    return

    async def _on_message(self, link: Bridge, session: LiveSession, message: types.LiveServerMessage) -> bool:
        content = message.server_content
        if content is not None:
            await self._on_content(link, content, message.data)
        if message.tool_call is not None:
            await self._on_tool_call(link, session, message.tool_call)
        if message.usage_metadata is not None:
            usage = message.usage_metadata
            await self._publish(
                self._make.make(
                    UsageReported,
                    prompt_tokens=usage.prompt_token_count or 0,
                    response_tokens=usage.response_token_count or 0,
                    total_tokens=usage.total_token_count or 0,
                )
            )
        update = message.session_resumption_update
        if update is not None and update.new_handle and update.new_handle != self.handle:
            self.handle = update.new_handle
            await self._publish(self._make.make(ResumptionHandleUpdated, handle=update.new_handle))
        if message.go_away is not None:
            await self._closed("go_away", None)
            return True
        return False

    async def _on_content(self, link: Bridge, content: types.LiveServerContent, audio: bytes | None) -> None:
        if content.input_transcription is not None and content.input_transcription.text:
            self._turn.caller_text.append(content.input_transcription.text)
        if content.output_transcription is not None and content.output_transcription.text:
            self._turn.agent_text.append(content.output_transcription.text)
        if audio and not self._turn.barged_in:
            await self._play(link, audio)
        if content.interrupted:
            if self._turn.utterance_id is not None and not self._turn.barged_in:
                await link.send(bridge.ClearPlayback())  # the edge records AgentInterrupted
            self._turn.barged_in = True
        if content.turn_complete:
            await self._finish_turn(link)

    async def _play(self, link: Bridge, audio: bytes) -> None:
        if self._turn.utterance_id is None:
            self._utterances += 1
            self._turn.utterance_id = f"{self._target.call_id}:u{self._utterances}"
            await link.send(bridge.BeginUtterance(utterance_id=self._turn.utterance_id))
            await self._publish(
                self._make.make(
                    AgentSpeechStarted, utterance_id=self._turn.utterance_id, stream_ms=self._stream_ms
                )
            )
        for start in range(0, len(audio), bridge.MAX_AUDIO_BYTES):
            chunk = audio[start : start + bridge.MAX_AUDIO_BYTES]
            await link.send(bridge.AgentAudio(seq=self._audio_seq, pcm=chunk))
            self._audio_seq += 1
            self._turn.generated_bytes += len(chunk)

    async def _finish_turn(self, link: Bridge) -> None:
        turn, self._turn = self._turn, _Turn()
        self._awaiting_reply = False
        mark_wait_s = 10.0
        spoke = turn.utterance_id is not None or bool("".join(turn.agent_text).strip())
        if self._voicemail_phase is _VoicemailPhase.SENT and spoke:
            # The message has been said: hang up once it has played out on the line.
            self._voicemail_phase = _VoicemailPhase.DONE
            self._pending_hangup = VOICEMAIL_REASON
            mark_wait_s += turn.generated_bytes / _BYTES_PER_MS_OUT / 1000
        await self._transcribe("caller", turn.caller_text)
        await self._transcribe("agent", turn.agent_text)
        if turn.utterance_id is not None:
            await link.send(bridge.PlayMark(name=turn.utterance_id))
            if not turn.barged_in:
                played = turn.generated_bytes // _BYTES_PER_MS_OUT
                await self._publish(
                    self._make.make(AgentSpeechFinished, utterance_id=turn.utterance_id, played_ms=played)
                )
        if self._pending_hangup is not None:
            await self._hang_up(link, self._pending_hangup, mark_wait_s=mark_wait_s)

    async def _transcribe(self, speaker: str, parts: list[str]) -> None:
        text = "".join(parts).strip()
        if not text:
            return
        self._transcript.append(f"{speaker}: {text}")
        self._segments += 1
        await self._publish(
            self._make.make(
                TranscriptSegment,
                speaker=speaker,
                text=text,
                final=True,
                start_ms=self._stream_ms,
                end_ms=None,
                segment_index=self._segments,
            )
        )

    async def _on_tool_call(self, link: Bridge, session: LiveSession, call: types.LiveServerToolCall) -> None:
        responses = []
        for function_call in call.function_calls or []:
            responses.append(await self._run_tool(function_call))
        if responses:
            await session.send_tool_response(function_responses=responses)

    async def _run_tool(self, call: types.FunctionCall) -> types.FunctionResponse:
        call_id, name, args = call.id or f"fc-{self._segments}", call.name or "", call.args or {}
        await self._publish(
            self._make.make(
                ToolCallRequested, tool_call_id=call_id, name=name, arguments_json=json.dumps(args)
            )
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        config = self._target.plan.config
        try:
            result = await self._tools.run(self._target.tenant_id, config.knowledge_base_ids, name, args)
        except ToolError as err:
            elapsed = int((loop.time() - started) * 1000)
            await self._publish(
                self._make.make(
                    ToolCallFailed, tool_call_id=call_id, name=name, error=str(err), duration_ms=elapsed
                )
            )
            return types.FunctionResponse(id=call_id, name=name, response={"error": str(err)})
        elapsed = int((loop.time() - started) * 1000)
        await self._publish(
            self._make.make(
                ToolCallCompleted,
                tool_call_id=call_id,
                name=name,
                result_json=json.dumps(result.response),
                duration_ms=elapsed,
            )
        )
        if result.hang_up_reason is not None:
            self._pending_hangup = result.hang_up_reason  # after the goodbye has been spoken
        if result.transfer_target is not None:
            await self._publish(
                self._make.make(TransferRequested, target=result.transfer_target, reason=None)
            )
        return types.FunctionResponse(id=call_id, name=name, response=result.response)

    async def _hang_up(
        self, link: Bridge, reason: str, *, requested_by: str = "agent", mark_wait_s: float = 10.0
    ) -> None:
        self._pending_hangup = None
        await link.send(bridge.PlayMark(name=_HANGUP_MARK))
        with contextlib.suppress(TimeoutError):  # let the caller hear the goodbye, within reason
            await asyncio.wait_for(self._hangup_mark.wait(), timeout=mark_wait_s)
        # Acknowledged first, so the call log records who hung up before the stream stops.
        await self._publish(
            self._make.make(HangUpRequested, requested_by=requested_by, reason=reason), wait=True
        )
        await link.send(bridge.HangUp(reason="agent_hung_up" if requested_by == "agent" else reason))

    async def _closed(self, reason: str, code: int | None) -> None:
        await self._publish(
            self._make.make(
                GeminiSessionClosed, reason=reason, resumption_handle=self.handle, close_code=code
            )
        )

    async def _publish(self, record: CallInput, *, wait: bool = False) -> None:
        try:
            await self._facts.publish(record, wait=wait)
        except Exception:  # the conversation must go on even when the broker is away
            log.exception("call %s: could not publish %s", self._target.call_id, type(record).__name__)


_HANGUP_MARK = "hangup"
VOICEMAIL_REASON = "voicemail"
"""HangUpRequested.reason after a voicemail: one of END_REASONS, so the call ends with it."""


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
