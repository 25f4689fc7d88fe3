"""The internal audio-bridge server: session workers connect here, one live connection per call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from edge.call import LiveCall
from edge.node import EdgeNode, TokenCheck
from schemas import bridge

log = logging.getLogger(__name__)

_REFUSALS = {
    TokenCheck.BAD: "bad bridge token",
    TokenCheck.EXPIRED: "bridge token expired",
    TokenCheck.GONE: "no live call for this token",
    TokenCheck.ENDED: "the call has ended",
}
_REPLACED_CLOSE_TIMEOUT_S = 2.0
"""How long a replaced worker has to take its 4409 close before its connection is dropped."""
_closing: set[asyncio.Task[None]] = set()


async def start_bridge_server(node: EdgeNode, host: str, port: int) -> Server:
    """Listen for workers on host:port (the caller closes the returned server)."""

    async def handler(connection: ServerConnection) -> None:
        await serve_worker(connection, node)

    return await serve(handler, host, port, max_size=bridge.MAX_AUDIO_BYTES + 64, compression=None)


async def serve_worker(connection: ServerConnection, node: EdgeNode) -> None:
    """Authenticate a worker, attach it to its call and apply its directives until it leaves."""
    request = connection.request
    target = urlsplit(request.path if request is not None else "")
    call_id = (
        target.path.removeprefix(bridge.PATH_PREFIX) if target.path.startswith(bridge.PATH_PREFIX) else ""
    )
    token = request.headers.get(bridge.TOKEN_HEADER) if request is not None else None
    if not token:
        token = next(iter(parse_qs(target.query).get("token", [])), None)
    verdict = node.check_token(call_id, token)
    if verdict != TokenCheck.OK:
        if verdict == TokenCheck.ENDED:  # its worker had not heard yet: routine, not an attack
            node.metrics.incr("bridge.refused_call_ended")
            log.info("bridge refused for call %s: the call has ended", call_id)
        else:
            node.metrics.security_event("bridge_refused", f"call {call_id[:64]!r}: {_REFUSALS[verdict]}")
        await connection.close(verdict, _REFUSALS[verdict])
        return
    call = node.calls[call_id]
    worker_id = (request.headers.get(bridge.WORKER_HEADER) if request is not None else None) or None
    if call.refuses_worker(worker_id):
        await _refuse_replaced(connection, node, call_id, worker_id)
        return
    session = call.session
    hello = bridge.Hello(
        call_id=call_id,
        stream_sid=call.stream_sid,
        buffered_ms=session.buffered_ms(),
        dropped_ms=session.caller.dropped * 20,
    )
    try:
        await connection.send(bridge.encode_text(hello))
    except ConnectionClosed:
        return
    if call.ending:  # it ended while we said hello: its finish would never close this worker
        await _refuse_ended(connection, node, call_id)
        return
    if call.refuses_worker(worker_id):  # another worker took the call while we said hello
        await _refuse_replaced(connection, node, call_id, worker_id)
        return
    previous = call.attach_worker(connection, worker_id)
    node.metrics.incr("bridge.connected")
    if previous is not None:
        node.metrics.incr("bridge.replaced")
        # In the background: a hung worker's close would wait on its full socket, and this
        # worker's directives (the agent's audio) with it.
        closing = asyncio.get_running_loop().create_task(_close_replaced(previous, node))
        _closing.add(closing)
        closing.add_done_callback(_closing.discard)
    try:
        async for frame in connection:
            if call.ending:  # Twilio is gone; the call's finish closes this worker in a moment
                node.metrics.incr("bridge.directives_after_end")
                continue
            if call.worker is not connection:
                # Replaced by a newer worker, closing: two workers' audio must not interleave.
                node.metrics.incr("bridge.directives_after_replaced")
                continue
            await apply_directive(call, bridge.decode(frame))
    except ConnectionClosed:
        pass
    finally:
        call.detach_worker(connection)


async def _close_replaced(connection: ServerConnection, node: EdgeNode) -> None:
    """Close a replaced worker with 4409; drop it if it does not take the close in time."""
    try:
        await asyncio.wait_for(
            connection.close(bridge.CLOSE_REPLACED, "replaced by a newer worker connection"),
            _REPLACED_CLOSE_TIMEOUT_S,
        )
    except TimeoutError:
        node.metrics.incr("bridge.replaced_aborted")
        connection.transport.abort()
    except Exception:  # a connection already gone is closed
        log.debug("closing a replaced worker connection failed", exc_info=True)


async def _refuse_replaced(
    connection: ServerConnection, node: EdgeNode, call_id: str, worker_id: str | None
) -> None:
    """A worker replaced on this call came back while another serves it: 4409 (final for it).

    Its 4409 may never have reached it (a stalled worker is dropped, ``_close_replaced``), and
    taking the call back would replace the worker that serves it now.
    """
    node.metrics.incr("bridge.refused_replaced")
    log.info("bridge refused for call %s: worker %r was replaced by another", call_id, (worker_id or "")[:64])
    with contextlib.suppress(Exception):
        await connection.close(bridge.CLOSE_REPLACED, "replaced by another worker")


async def _refuse_ended(connection: ServerConnection, node: EdgeNode, call_id: str) -> None:
    node.metrics.incr("bridge.refused_call_ended")
    log.info("bridge closed for call %s: the call has ended", call_id)
    with contextlib.suppress(Exception):
        await connection.close(TokenCheck.ENDED, _REFUSALS[TokenCheck.ENDED])


async def apply_directive(call: LiveCall, message: bridge.BridgeMessage | bridge.BridgeError) -> None:
    """One worker frame's effect on the call."""
    playback = call.session.playback
    match message:
        case bridge.AgentAudio(pcm=pcm):
            if playback.muted:
                call.node.metrics.incr("playback.dropped_after_clear")
            if playback.enqueue(pcm):
                call.playback_ready()
        case bridge.BeginUtterance(utterance_id=utterance_id):
            playback.begin_utterance(utterance_id)
        case bridge.PlayMark(name=name):
            playback.mark(name)
            call.playback_ready()
        case bridge.ClearPlayback():
            await call.clear_playback("model")
        case bridge.HangUp(reason=reason):
            log.info("worker hung up call %s: %s", call.call_id, reason)
            call.ending_because("hangup")  # Twilio's stop may arrive before the REST call returns
            await call.node.telephony.hang_up(call.identity.call_sid)
            await call.end("hangup")
        case bridge.Transfer(target=target):
            log.info("worker transfers call %s to %s", call.call_id, target)
            call.ending_because("transferred")
            if await call.node.telephony.transfer(call.identity.call_sid, target):
                await call.end("transferred")  # Twilio has left our stream for the <Dial>
            else:
                # The agent has said goodbye and the call machine waits for the transfer: going
                # on would leave the caller with nobody. End the call, and say why.
                call.node.metrics.incr("telephony.transfer_failed")
                call.ending_because("transfer_failed", instead_of="transferred")
                await call.node.telephony.hang_up(call.identity.call_sid)
                await call.end("transfer_failed")
        case bridge.BridgeError(kind=kind, detail=detail):
            call.node.metrics.bad_input(f"bridge.{kind}", call.call_id, detail)
        case _:
            call.node.metrics.bad_input("bridge.wrong_direction", call.call_id, type(message).__name__)
