"""One call's Gemini Live session, bridged to the call's edge node (the worker's hot path)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from google.genai import types

from schemas import bridge
from schemas.call_session import UsageReported
from schemas.calls import HangUpRequested
from streams.sessions.bridge_link import (
    Bridge,
    BridgeClosed,
    BridgeEnd,
    BridgeFactory,
    BridgeLost,
    BridgeRefused,
)
from streams.sessions.caller_audio import CallerAudioPipe
from streams.sessions.conversation import Conversation
from streams.sessions.facts import FactSink, Reporter
from streams.sessions.live_config import (
    SILENCE_CHECK_IN_PROMPT,
    SessionPlan,
    greeting_prompt,
    live_connect_config,
    voicemail_prompt,
)
from streams.sessions.live_wire import LiveWire, ModelAudio, ServerMessage
from streams.sessions.pending_bridge import PendingBridge
from streams.sessions.recovery import APOLOGY_PROMPT, ModelFailure, classify, malformed
from streams.sessions.resumption import Resumption
from streams.sessions.tool_call import ToolCalls
from streams.sessions.tools import ToolContext, ToolRunner

log = logging.getLogger(__name__)

TRANSFER_WAIT_S = 10.0
"""Longest a transfer the model did not ask for on this session waits for a turn in progress."""

END_CALL_GRACE_S = 8.0
"""How long after ``end_call`` (for ``transfer_call``, after the call's transfer reaches the
session) the model has to start and finish its goodbye turn (``CallSession._wait_for_goodbye``)."""

GOODBYE_FOLLOW_UP_S = 1.5
"""After end_call or transfer_call, how long a model whose calling turn already spoke is given to
start another turn (its answer to the tool's response) before that speech is taken for the
goodbye. Longer than a Live model's usual time to first audio, short enough not to be dead air."""

CHECK_IN_WAIT_S = 30.0
"""Longest a silence check-in waits for a turn in progress (a check-in then interrupts nothing)."""

GO_AWAY_MARGIN_S = 3.0
"""How long before a goAway's deadline (its ``timeLeft``) the session reconnects at the latest."""

GO_AWAY_DEFAULT_S = 2.0
"""How long after a goAway without a readable ``timeLeft`` the session reconnects at the latest."""

GO_AWAY_HANDLE_WAIT_S = 2.0
"""After a goAway, once the turn in progress and the tools are done, how long the session waits
for a resumption handle that covers them (within the goAway's deadline)."""

GO_AWAY_EARLY_S = 60.0
"""A goAway this soon after its connection opened, with no exchange with the caller on that
connection, counts as a failure (backs off, and ends the call after ``max_reconnects`` in a
row): a server sending goAway after goAway must not have the session reconnect in a loop."""

LIVE_SETUP_TIMEOUT_S = 10.0
"""Longest a Live connection's setup (connect, then the server's setupComplete) may take before it
counts as a failed connection; google-genai's ``connect`` waits for setupComplete for ever."""

LiveSession = Any  # google.genai.live.AsyncSession; typed loosely, the SDK's own hints are partial
LiveConnector = Callable[[str, dict[str, Any]], AbstractAsyncContextManager[LiveSession]]


class SessionOutcome(StrEnum):
    """How a session run ended; the manager restarts only REPLACED, after a hold (the call may come
    back to this worker); for the others the call's next stream, with a new token, decides."""

    ENDED = "ended"
    """The stream stopped or the agent hung up."""
    REFUSED = "refused"
    """The edge refused the bridge token (call gone, token expired): nothing to talk to."""
    GAVE_UP = "gave_up"
    """The model or the bridge could not be reached after retries; the call was ended (a
    pre-warmed session whose stream had not started yet ends quietly instead: the session
    started with the stream tries the model again)."""
    REPLACED = "replaced"
    """Another worker connected to the call's bridge (a rebalance moved the call): it talks now."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTarget:
    """Which call, where its audio is, and how its session is set up.

    A pre-warmed session starts before the call's media stream: its bridge address and token
    are None until ``CallSession.attach`` gives them.
    """

    tenant_id: str
    agent_id: str
    call_id: str
    bridge_url: str | None = None
    bridge_token: str | None = None
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
        setup_timeout_s: float = LIVE_SETUP_TIMEOUT_S,
        bridge_factory: BridgeFactory | None = None,
    ) -> None:
        if bridge_factory is None:  # this worker names itself on the bridge
            bridge_factory = functools.partial(Bridge, worker_id=target.worker_id)
        self._target = target
        self._connect_live = connect_live
        self._setup_timeout_s = setup_timeout_s
        self._facts = Reporter(facts, target.tenant_id, target.call_id)
        self._resumption = Resumption(
            self._facts,
            handle=target.plan.resumption_handle,
            worker_id=target.worker_id,
            max_reconnects=max_reconnects,
        )
        plan = target.plan
        self._conversation = Conversation(
            target.call_id, self._facts, segments=plan.segments_so_far, utterances=plan.utterances_so_far
        )
        self._caller_audio = CallerAudioPipe()
        context = ToolContext(
            tenant_id=target.tenant_id,
            agent_id=target.agent_id,
            call_id=target.call_id,
            config=target.plan.config,
        )
        self._tool_calls = ToolCalls(tools, self._facts, context)
        self._apologise = False
        self._line_request: bridge.HangUp | bridge.Transfer | None = None
        self._line_requested = asyncio.Event()
        self._check_in_due = asyncio.Event()
        # The current Live connection's goAway (``_on_message``), and what it waits for.
        self._went_away = asyncio.Event()
        self._reconnect_by = 0.0
        self._handle_current = True
        """No turn completed nor tool answered on this connection since its latest handle."""
        self._tool_answered_at: float | None = None
        self._in_message = False
        self._opened_at = 0.0
        self._exchanged = False
        """The caller was heard and the model completed a turn on the current connection."""
        self._link: Bridge | PendingBridge
        if target.bridge_url is None or target.bridge_token is None:
            self._link = PendingBridge(target.call_id, bridge_factory=bridge_factory)
        else:
            self._link = bridge_factory(target.bridge_url, target.bridge_token)
        if target.plan.voicemail_message:
            self.request_voicemail(target.plan.voicemail_message)

    @property
    def bridge_token(self) -> str | None:
        """The token of the stream this session talks through; None while pre-warmed."""
        if isinstance(self._link, PendingBridge):
            return self._link.token
        return self._target.bridge_token

    @property
    def reached_caller(self) -> bool:
        """Has anything of this session been sent towards the caller (the bridge is open)?"""
        if isinstance(self._link, PendingBridge):
            return self._link.opened
        return True

    @property
    def resumption_handle(self) -> str | None:
        """The latest resumption handle of this session's Live connection, if any."""
        return self._resumption.handle

    def attach(self, bridge_url: str, bridge_token: str) -> None:
        """The call's stream has started: a pre-warmed session connects to its bridge now."""
        if isinstance(self._link, PendingBridge) and not self._link.attached:
            self._resumption.caller_arrived()
            self._link.attach(bridge_url, bridge_token)

    def request_voicemail(self, message: str) -> None:
        """An answering machine took the call: say message once the line is free, then hang up.

        From now on the machine's audio is no longer passed to the model. Repeats are ignored.
        """
        self._conversation.request_voicemail(message)
        self._caller_audio.clear()  # the machine's greeting and beep, queued while we were busy

    def close_line(self, directive: bridge.HangUp | bridge.Transfer) -> None:
        """The call's state ended or transferred the call: have the edge carry it out, once.

        The call machine decides a hang-up for an operator's EndCall, the maximum duration and
        the silence timeout, and a transfer for the transfer tool; only the edge can act on the
        line, and this session holds the call's bridge. A hang-up this session sent itself is
        not sent again.
        """
        if self._line_request is None and not self._conversation.line_closed:
            self._line_request = directive
            self._line_requested.set()

    def check_in(self) -> None:
        """The caller has been silent past the agent's timeout: have the model check in (the
        manager asks once per silence)."""
        self._check_in_due.set()

    async def run(self) -> SessionOutcome:
        """Connect the bridge, then keep a Live session going until the call ends.

        A pre-warmed session opens the Live session first and its bridge once attached; any
        other opens the bridge first, and opens no Live session for a token the edge refuses.
        """
        link = self._link
        line = asyncio.create_task(self._close_line_when_asked(link))
        try:
            if not isinstance(link, PendingBridge):
                await link.open()
            return await self._converse(link)
        except BridgeRefused as refused:
            # A token for a call the edge no longer has: record it, never retry it. A call that
            # ended while this worker was catching up is routine; anything else is worth a look.
            level = logging.INFO if refused.code == bridge.CLOSE_CALL_ENDED else logging.WARNING
            log.log(level, "call %s: bridge refused: %s", self._target.call_id, refused)
            await self._resumption.closed("call_ended", refused.code)
            return SessionOutcome.REFUSED
        except BridgeLost as lost:  # never reached, or dropped and not reconnected
            log.warning("call %s: bridge lost: %s", self._target.call_id, lost)
            await self._conversation.keep_unfinished_turn()
            await self._resumption.closed("error", lost.code)
            await self._facts.report(HangUpRequested, requested_by="system", reason="failed", wait=True)
            return SessionOutcome.GAVE_UP
        except (_Ended, BridgeClosed) as ended:
            log.info("call %s: session ends (%s)", self._target.call_id, ended)
            replaced = isinstance(ended, BridgeClosed) and ended.code == bridge.CLOSE_REPLACED
            if not replaced:
                # Another worker's session goes on with the call (and numbers its segments on
                # from the call's state): one written from here could take its number.
                await self._conversation.keep_unfinished_turn()
            await self._resumption.closed("call_ended", None)
            return SessionOutcome.REPLACED if replaced else SessionOutcome.ENDED
        finally:
            line.cancel()
            await asyncio.gather(line, return_exceptions=True)
            with contextlib.suppress(Exception):
                await link.close()

    async def _close_line_when_asked(self, link: Bridge | PendingBridge) -> None:
        """Send the hang-up or transfer the call's state asked for (a transfer once the caller
        has heard the agent's goodbye, ``_let_goodbye_play``)."""
        await self._line_requested.wait()
        directive = self._line_request
        assert directive is not None
        if isinstance(directive, bridge.Transfer):
            await self._let_goodbye_play(link)
        if self._conversation.line_closed:
            return
        log.info("call %s: the call's state asks the edge to %s", self._target.call_id, directive)
        # Only a directive that went out closes the line: one dropped while the bridge was down
        # (before it opened, or reconnecting) would otherwise block every later hang-up.
        if await link.send_when_open(directive):
            self._conversation.line_closed = True
        else:
            log.warning("call %s: could not send %s to the edge", self._target.call_id, directive)

    async def _let_goodbye_play(self, link: Bridge | PendingBridge) -> None:
        """Before a transfer: wait for the model's goodbye after ``transfer_call`` ("I am
        transferring you now", ``_wait_for_goodbye``), then let the line play out what it was
        sent (its mark, within MARK_WAIT_S).

        A transfer this session did not answer the tool for (the call came to this worker while
        transferring) waits only for a turn in progress, at most TRANSFER_WAIT_S.
        """
        conversation = self._conversation
        with contextlib.suppress(BridgeClosed):  # the call ended meanwhile: nothing to play
            if conversation.goodbye_owed:
                await self._wait_for_goodbye(link)
            else:
                await self._until_quiet(TRANSFER_WAIT_S)
            if not conversation.line_closed:
                await conversation.play_out_before_transfer(link)

    async def _wait_for_goodbye(self, link: BridgeEnd) -> None:
        """``end_call`` or ``transfer_call`` was answered: wait for the model's goodbye, its first
        turn that starts speaking afterwards and ends (``Conversation.goodbye_said``). A model
        silent for END_CALL_GRACE_S is not waited for; a goodbye still being said then is let
        finish (CHECK_IN_WAIT_S), and one that never ends is abandoned, so the line can close."""
        conversation = self._conversation
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + END_CALL_GRACE_S
        while not conversation.goodbye_said.is_set() and loop.time() < give_up_at:
            spoken_at = conversation.spoken_with_tool_at
            followed_up_by = None if spoken_at is None else spoken_at + GOODBYE_FOLLOW_UP_S
            if followed_up_by is not None and conversation.quiet and loop.time() >= followed_up_by:
                # The turn that called the tool spoke ("thanks for calling, goodbye") and no new
                # turn followed: that was the goodbye. Waiting out the grace would be dead air.
                break
            await asyncio.sleep(0.05)
        await self._until_quiet(CHECK_IN_WAIT_S)
        if conversation.goodbye_owed and not conversation.quiet:
            await conversation.abandon_turn(link)

    async def _until_quiet(self, limit_s: float) -> None:
        """Wait (polling, as the voicemail does) until the model has no turn in progress."""
        loop = asyncio.get_running_loop()
        until = loop.time() + limit_s
        while loop.time() < until:
            if self._conversation.quiet:
                return
            await asyncio.sleep(0.05)

    async def _converse(self, link: BridgeEnd) -> SessionOutcome:
        resumption, conversation = self._resumption, self._conversation
        while True:
            try:
                await self._one_connection(link)
                await resumption.closed("go_away", None)
                loop = asyncio.get_running_loop()
                early = not self._exchanged and loop.time() - self._opened_at < GO_AWAY_EARLY_S
                # The turn in progress went with the connection: carried over, its barge-in
                # muted the next connection's whole answer.
                await conversation.abandon_turn(link)
                if resumption.went_away(early=early):
                    log.warning("call %s: goAway after goAway; giving up", self._target.call_id)
                    return await self._give_up(link)
                if not early:
                    continue  # a planned reconnect: no back-off
            except ModelFailure as failure:
                log.warning("call %s: model connection failed (%s)", self._target.call_id, failure)
                await resumption.closed("error", failure.code)
                await conversation.abandon_turn(link)
                if resumption.failed(failure):
                    return await self._give_up(link)
                self._apologise = self._apologise or resumption.began(spoken=conversation.spoken)
            await asyncio.sleep(resumption.backoff_s)

    async def _give_up(self, link: BridgeEnd) -> SessionOutcome:
        if self.bridge_token is None:
            # Pre-warmed, no stream yet: nothing to say goodbye on. The session started with
            # the stream tries the model again, and gives up there. (A stream attached during
            # the retries restarts their count, and gets the goodbye if they run out.)
            return SessionOutcome.GAVE_UP
        await self._conversation.give_up(link)
        return SessionOutcome.GAVE_UP

    async def _one_connection(self, link: BridgeEnd) -> None:
        conversation = self._conversation
        plan, fresh = self._resumption.next_plan(
            self._target.plan, spoken=conversation.spoken, transcript=conversation.transcript
        )
        model = plan.config.model
        opened = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                connecting = self._connect_live(model, live_connect_config(plan))
                try:
                    async with asyncio.timeout(self._setup_timeout_s):
                        session = await stack.enter_async_context(connecting)
                except TimeoutError as err:
                    detail = f"no Live setup within {self._setup_timeout_s:g} s"
                    raise ModelFailure(None, detail, in_setup=True) from err
                opened = True
                await self._resumption.opened(model, fresh=fresh)
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
        if self._conversation.voicemail is not None:
            self._apologise = False
            return  # no greeting nor apology for a machine: _leave_voicemail speaks instead
        if self._apologise:
            self._apologise = False
            text = APOLOGY_PROMPT
        elif self._target.greet and plan.config.greeting and not self._conversation.spoken:
            text = greeting_prompt(plan.config.greeting)
        else:
            return
        await self._say_to_model(session, text)

    async def _say_to_model(self, session: LiveSession, text: str) -> None:
        self._conversation.awaiting_reply = True
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text=text)]), turn_complete=True
        )

    async def _pump(self, link: BridgeEnd, session: LiveSession) -> None:
        """Run one connection until it fails or, after its goAway, has finished its work."""
        wire = LiveWire(session)
        self._went_away.clear()
        self._handle_current, self._tool_answered_at = True, None
        self._opened_at, self._exchanged = asyncio.get_running_loop().time(), False
        uplink = asyncio.create_task(self._uplink(link, self._caller_audio))
        sender = asyncio.create_task(self._caller_audio.run(wire.send_audio))
        downlink = asyncio.create_task(self._downlink(link, session, wire))
        voicemail = asyncio.create_task(self._leave_voicemail(session))
        check_in = asyncio.create_task(self._check_in_when_due(session))
        hang_up = asyncio.create_task(self._hang_up_if_forgotten(link))
        went_away = asyncio.create_task(self._went_away.wait())
        tasks: tuple[asyncio.Task[Any], ...] = (
            uplink,
            sender,
            downlink,
            voicemail,
            check_in,
            hang_up,
            went_away,
        )
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise _Ended, BridgeClosed or the model's failure
            if went_away in done:
                # Start nothing new (caller audio waits in its pipe for the next connection;
                # no check-in, no voicemail prompt); let the work in progress finish here.
                for task in (sender, voicemail, check_in):
                    task.cancel()
                await asyncio.gather(sender, voicemail, check_in, return_exceptions=True)
                leave = asyncio.create_task(self._finish_before_leaving())
                tasks = (*tasks, leave)
                done, _ = await asyncio.wait(
                    (uplink, downlink, hang_up, leave), return_when=asyncio.FIRST_COMPLETED
                )
                try:
                    for task in done:
                        task.result()
                except ModelFailure as failure:  # the connection's announced end came first
                    log.info("call %s: Live connection ended after goAway: %s", self._target.call_id, failure)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._tool_calls.close("the Live connection closed before the tool finished")

    async def _finish_before_leaving(self) -> None:
        """After a goAway: let the model's turn in progress, the running tools (whose answers go
        to this connection, which asked) and the model's answer to them finish, then wait a
        little for a resumption handle that covers them; all by the goAway's deadline."""
        loop = asyncio.get_running_loop()
        conversation = self._conversation
        while loop.time() < self._reconnect_by:
            answered = self._tool_answered_at
            busy = (
                not conversation.quiet
                or conversation.goodbye_owed
                or self._in_message  # e.g. a hang-up waiting for its mark
                or bool(self._tool_calls.running)
                # the model's answer to a tool's response may take a moment to start
                or (answered is not None and loop.time() < answered + GOODBYE_FOLLOW_UP_S)
            )
            if not busy:
                break
            await asyncio.sleep(0.05)
        handle_by = min(self._reconnect_by, loop.time() + GO_AWAY_HANDLE_WAIT_S)
        while loop.time() < handle_by:
            if self._handle_current:
                return
            await asyncio.sleep(0.05)

    async def _leave_voicemail(self, session: LiveSession) -> None:
        """Once a voicemail is requested and the model is quiet, ask it to say the message.

        The turn that answers it ends with the hang-up (``Conversation``). Never returns: the
        pump stops when the uplink or the downlink does.
        """
        conversation = self._conversation
        await conversation.voicemail_known.wait()
        while conversation.voicemail_pending:
            if not conversation.quiet:
                await asyncio.sleep(0.02)  # let the turn in progress finish first
                continue
            await self._say_to_model(session, voicemail_prompt(conversation.voicemail_sent()))
        await asyncio.Future()

    async def _check_in_when_due(self, session: LiveSession) -> None:
        """Ask the model to check in on a silent caller once it is quiet. Never returns."""
        conversation = self._conversation
        while True:
            await self._check_in_due.wait()
            await self._until_quiet(CHECK_IN_WAIT_S)
            self._check_in_due.clear()
            if not conversation.line_closed:
                await self._say_to_model(session, SILENCE_CHECK_IN_PROMPT)

    async def _hang_up_if_forgotten(self, link: BridgeEnd) -> None:
        """After ``end_call`` the hang-up goes out as the goodbye's turn ends (``Conversation``);
        a model that says no goodbye, or one that never ends, is hung up on once
        ``_wait_for_goodbye`` gives up on it. Never returns."""
        conversation = self._conversation
        await conversation.hangup_asked.wait()
        await self._wait_for_goodbye(link)
        await conversation.hang_up_if_still_pending(link)
        await asyncio.Future()

    async def _uplink(self, link: BridgeEnd, caller_audio: CallerAudioPipe) -> None:
        """Caller audio towards the session; edge notices into the conversation."""
        conversation = self._conversation
        while True:
            message = await link.receive()
            match message:
                case bridge.CallerAudio(pcm=pcm, stream_ms=stream_ms):
                    conversation.stream_ms = stream_ms
                    if conversation.voicemail is not None:
                        continue  # a machine: the model must not answer its greeting or beep
                    caller_audio.push(pcm)
                case bridge.BargeIn(utterance_id=utterance_id):
                    conversation.barge_in(utterance_id)
                case bridge.MarkReached(name=name):
                    conversation.mark_reached(name)
                case bridge.StreamStopped(reason=reason):
                    raise _Ended(f"stream stopped: {reason}")
                case bridge.Hello() | bridge.Dtmf():
                    pass

    async def _downlink(self, link: BridgeEnd, session: LiveSession, wire: LiveWire) -> None:
        """Model messages to the bridge and to facts, until the connection ends."""
        messages = wire.messages()
        while True:
            try:
                message = await anext(messages)
            except Exception as err:  # the SDK's parse errors are ValueError, TypeError...
                # (wire.messages() never ends: a StopAsyncIteration here would be a bug, and is
                # reported as a malformed message rather than taken for the end of a turn)
                raise (classify(err) or malformed(err)) from err
            self._in_message = True
            try:
                await self._on_message(link, session, message)
            finally:
                self._in_message = False
            # A whole answer can arrive at once (buffered in the socket): let the other
            # calls' frames in between its messages rather than after all of them.
            await asyncio.sleep(0)

    async def _on_message(self, link: BridgeEnd, session: LiveSession, message: ServerMessage) -> None:
        if isinstance(message, ModelAudio):  # most messages: nothing but the next chunk of speech
            await self._conversation.on_audio(link, message.pcm)
            return
        content = message.server_content
        if content is not None:
            heard = content.input_transcription is not None and bool(content.input_transcription.text)
            heard = heard or self._conversation.caller_heard
            await self._conversation.on_content(link, content, _audio_of(content))
            if content.turn_complete:
                self._handle_current = False
                if heard:
                    # An exchange with the caller: the connection works. (The answer to our own
                    # greeting or apology prompt proves less: a service failing every real
                    # turn would have the call retry for ever.)
                    self._exchanged = True
                    self._resumption.healthy()
        if message.tool_call is not None:
            # Off the downlink: audio and interruptions keep flowing while a tool runs.
            async def respond(response: types.FunctionResponse) -> None:
                await session.send_tool_response(function_responses=[response])
                self._handle_current = False
                self._tool_answered_at = asyncio.get_running_loop().time()

            self._conversation.tool_called()
            await self._tool_calls.start(message.tool_call, self._conversation, respond)
        cancellation = message.tool_call_cancellation
        if cancellation is not None and cancellation.ids:
            await self._tool_calls.cancel(cancellation.ids, "withdrawn by the model")
        if message.usage_metadata is not None:
            usage = message.usage_metadata
            await self._facts.report(
                UsageReported,
                prompt_tokens=usage.prompt_token_count or 0,
                response_tokens=usage.response_token_count or 0,
                total_tokens=usage.total_token_count or 0,
            )
        update = message.session_resumption_update
        if update is not None and update.new_handle:
            self._handle_current = True
            if update.new_handle != self._resumption.handle:
                await self._resumption.updated(update.new_handle)
        if message.go_away is not None and not self._went_away.is_set():
            # Reconnect before the server's deadline, once the work in progress is done.
            left_s = _time_left_s(message.go_away.time_left)
            drain_s = GO_AWAY_DEFAULT_S if left_s is None else max(0.0, left_s - GO_AWAY_MARGIN_S)
            self._reconnect_by = asyncio.get_running_loop().time() + drain_s
            self._went_away.set()


def _time_left_s(time_left: str | None) -> float | None:
    """A goAway's ``timeLeft`` (a protobuf Duration in JSON: "50s", "1.5s") in seconds; None if
    absent or unreadable."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)s\s*", time_left or "")
    return float(match.group(1)) if match else None


def _audio_of(content: types.LiveServerContent) -> bytes | None:
    """The model turn's inline audio, joined: ``LiveServerMessage.data`` without its per-part dump.

    The SDK's property dumps every part to find non-data fields it only warns about, several
    microseconds per audio message for nothing the session uses.
    """
    turn = content.model_turn
    if turn is None or not turn.parts:
        return None
    chunks = [
        part.inline_data.data
        for part in turn.parts
        if part.inline_data is not None and isinstance(part.inline_data.data, bytes)
    ]
    if len(chunks) == 1:
        return chunks[0] or None
    return b"".join(chunks) or None
