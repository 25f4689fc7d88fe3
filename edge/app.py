"""The public edge ASGI app: Twilio webhooks, the media WebSocket, health. Built only by create_app."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from edge import twiml
from edge.media_socket import AsgiMediaSocket, serve_media
from edge.node import EdgeNode, call_id_for
from edge.publisher import FactPublisher
from edge.routing import RoutingTable
from edge.signature import SIGNATURE_HEADER, SignatureChecker
from edge.telephony import Telephony
from infra.settings import Settings
from schemas.calls import TELEPHONY_STATUSES, CallReceived, TelephonyStatusChanged
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, TenantId

log = logging.getLogger(__name__)
_XML = "application/xml"


def create_app(
    settings: Settings,
    *,
    publisher: FactPublisher,
    telephony: Telephony,
    routing: RoutingTable | None = None,
    node: EdgeNode | None = None,
) -> FastAPI:
    """Wire the public app around an ``EdgeNode`` (built here unless given)."""
    if node is None:
        node = EdgeNode(settings, publisher=publisher, telephony=telephony, routing=routing)
    app = FastAPI(title="voice edge", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(_ForbiddenError, _forbidden)
    app.add_exception_handler(_TooLargeError, _too_large)
    app.state.node = node
    app.state.signatures = SignatureChecker(
        settings.twilio.auth_token.get_secret_value(), settings.twilio.public_base_url
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        event_log = node.publisher.healthy
        ok = node.ready and not node.draining and event_log
        body = {"ready": ok, "draining": node.draining, "event_log": event_log, "streams": len(node.calls)}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> dict[str, int]:
        return node.metrics.snapshot() | {"streams.live": len(node.calls)}

    @app.post("/twilio/voice")
    async def voice(form: SignedForm) -> Response:
        query = _query_of(form)
        unknown = not _is_outbound(query) and node.routing.lookup(form.get("To", "")) is None
        # Maybe an agent published a moment ago: read the agent events to the end first. If the
        # log cannot be read, the number may well be ours: do not tell the caller otherwise.
        if unknown and not await node.refresh_routes():
            return PlainTextResponse(_refuse_unavailable(node), media_type=_XML)
        return PlainTextResponse(answer_call(node, settings, form, query), media_type=_XML)

    @app.post("/twilio/status")
    async def status(form: SignedForm) -> Response:
        record_status(node, form)
        return Response(status_code=204)

    @app.post("/twilio/stream-status")
    async def stream_status(form: SignedForm) -> Response:
        event = form.get("StreamEvent", "unknown")
        node.metrics.incr(f"stream_status.{event}")
        log.info(
            "stream status %s for %s: %s", event, form.get("StreamSid", "-"), form.get("StreamError", "")
        )
        return Response(status_code=204)

    @app.websocket(twiml.MEDIA_PATH)
    async def media(websocket: WebSocket) -> None:
        # EdgeServer takes this path off uvicorn's socket directly (edge.media_protocol);
        # this route runs the same media loop when the app is hosted some other way.
        socket = AsgiMediaSocket(websocket.receive, websocket.send)
        await serve_media(socket, websocket.headers.get(SIGNATURE_HEADER), node, app.state.signatures)

    return app


class _ForbiddenError(Exception):
    pass


class _TooLargeError(Exception):
    pass


MAX_WEBHOOK_BYTES = 64 * 1024
"""Twilio's webhook bodies are a few kB (call and status fields, custom parameters)."""


async def _signed_form(request: Request) -> dict[str, str]:
    """The form fields of a webhook whose X-Twilio-Signature checks out; 403 otherwise."""
    node: EdgeNode = request.app.state.node
    checker: SignatureChecker = request.app.state.signatures
    # Twilio posts application/x-www-form-urlencoded; parsing it here needs no multipart library.
    # Its webhooks are a few kB: a body past the cap is refused as it streams in, before the
    # signature can be checked, so an unsigned sender cannot make the node hold megabytes.
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_WEBHOOK_BYTES:
            node.metrics.bad_input("webhook_too_large", "", f"{request.url.path}: over {MAX_WEBHOOK_BYTES} B")
            raise _TooLargeError
    body = raw.decode("utf-8", errors="replace")
    fields = parse_qsl(body, keep_blank_values=True)
    query = request.url.query
    if not checker.check_form(request.url.path, query, fields, request.headers.get(SIGNATURE_HEADER)):
        node.metrics.security_event("bad_signature", f"{request.url.path} from {request.client}")
        raise _ForbiddenError
    # The query's values (our own, set when we asked Twilio to call this URL) are read as
    # ``q.<key>``: a posted field of that shape must not pass for one of them.
    params = {key: value for key, value in fields if not key.startswith("q.") and key != "__query__"}
    params["__query__"] = query
    for key, value in request.query_params.items():
        params[f"q.{key}"] = value
    return params


async def _forbidden(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse("forbidden", status_code=403)


async def _too_large(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse("request body too large", status_code=413)


SignedForm = Annotated[dict[str, str], Depends(_signed_form)]


def _query_of(form: dict[str, str]) -> dict[str, str]:
    return {key[2:]: value for key, value in form.items() if key.startswith("q.")}


def answer_call(node: EdgeNode, settings: Settings, form: dict[str, str], query: dict[str, str]) -> str:
    """TwiML for a call: connect it to our media stream, or refuse it politely."""
    call_sid = form.get("CallSid", "")
    if not node.publisher.healthy:
        # The event log is away: no worker would hear of the call, and the caller would get
        # dead air. Say so instead (the facts of calls in progress are queued and retried).
        return _refuse_unavailable(node)
    if _is_outbound(query):
        params = twiml.StreamParameters(
            call_id=query["call_id"],
            tenant_id=query.get("tenant_id", ""),
            agent_id=query.get("agent_id", ""),
            agent_version=_int(query.get("agent_version")),
            direction="outbound",
            record=query.get("record", "false").lower() == "true",
        )
        if not node.admit_call():
            return _refuse_busy(node)
    else:
        if not call_sid:
            # Twilio names every call; without a name, every such request would be one call id
            # (``call_id_for("")``), two callers sharing one call. Not a call we can take.
            node.metrics.bad_input("voice_webhook", "", "no CallSid")
            return twiml.refuse(twiml.UNAVAILABLE_MESSAGE)
        route = node.routing.lookup(form.get("To", ""))
        if route is None:
            node.metrics.incr("calls.unknown_number")
            return twiml.refuse(twiml.UNKNOWN_NUMBER_MESSAGE)
        if not node.admit_call():
            return _refuse_busy(node)
        params = twiml.StreamParameters(
            call_id=call_id_for(call_sid),
            tenant_id=route.tenant_id,
            agent_id=route.agent_id,
            agent_version=route.agent_version,
            direction="inbound",
            record=route.record_calls,
        )
        node.answered.remember(params.call_id, route.tenant_id)
        node.publisher.publish(
            CallReceived(
                tenant_id=TenantId(route.tenant_id),
                call_id=CallId(params.call_id),
                seq=0,
                event_id=derive_event_id(params.call_id, 0, "edge.call_received"),
                occurred_at=datetime.now(UTC),
                correlation_id=CorrelationId(params.call_id),
                direction="inbound",
                from_number=form.get("From", ""),
                to_number=form.get("To", ""),
                agent_id=AgentId(route.agent_id),
                agent_version=route.agent_version,
                twilio_call_sid=call_sid or None,
                max_duration_s=route.max_duration_s,
                silence_timeout_s=route.silence_timeout_s,
            )
        )
    node.metrics.incr(f"calls.answered.{params.direction}")
    return twiml.connect_stream(settings.twilio.public_base_url, params)


def _is_outbound(query: dict[str, str]) -> bool:
    """Outbound calls carry their identity in the webhook's query (the dialer placed them)."""
    return query.get("direction") == "outbound" and bool(query.get("call_id"))


def _refuse_unavailable(node: EdgeNode) -> str:
    node.metrics.incr("calls.refused_unavailable")
    return twiml.refuse(twiml.UNAVAILABLE_MESSAGE)


def _refuse_busy(node: EdgeNode) -> str:
    node.metrics.incr("calls.refused_busy")
    return twiml.refuse(twiml.BUSY_MESSAGE)


def record_status(node: EdgeNode, form: dict[str, str]) -> None:
    """A status callback becomes TelephonyStatusChanged (unknown statuses are counted, not published)."""
    query = _query_of(form)
    call_sid = form.get("CallSid", "")
    status = form.get("CallStatus", "")
    if not call_sid or status not in TELEPHONY_STATUSES:
        node.metrics.bad_input("status_callback", call_sid, f"status {status[:32]!r}")
        return
    call_id = query.get("call_id") or call_id_for(call_sid)
    sequence = _opt_int(form.get("SequenceNumber"))
    node.publisher.publish(
        TelephonyStatusChanged(
            tenant_id=TenantId(query.get("tenant_id") or _tenant_of(node, call_id, form)),
            call_id=CallId(call_id),
            seq=0 if sequence is None else sequence,
            event_id=derive_event_id(call_id, sequence or 0, f"edge.status.{status}"),
            occurred_at=status_time(form.get("Timestamp"), datetime.now(UTC)),
            correlation_id=CorrelationId(call_id),
            twilio_call_sid=call_sid,
            status=status,
            answered_by=form.get("AnsweredBy") or None,
            duration_s=_opt_int(form.get("CallDuration")),
            sip_response_code=_opt_int(form.get("SipResponseCode")),
            sequence_number=sequence,
        )
    )


_CLOCK_SKEW = timedelta(minutes=1)
_OLDEST_STATUS = timedelta(days=1)
"""Twilio retries a callback for minutes, not days: an older ``Timestamp`` is not to be trusted."""


def status_time(timestamp: str | None, received_at: datetime) -> datetime:
    """When Twilio says the status changed (its RFC 2822 ``Timestamp``), if that is plausible.

    Callbacks can arrive late or out of order, so Twilio's time is the better one; a missing,
    unreadable, future or ancient one falls back to ``received_at``.
    """
    if not timestamp:
        return received_at
    try:
        at = parsedate_to_datetime(timestamp)
    except (TypeError, ValueError, IndexError, OverflowError):
        return received_at
    if at.tzinfo is None:  # RFC 2822's "-0000": UTC, origin unknown
        at = at.replace(tzinfo=UTC)
    if not received_at - _OLDEST_STATUS <= at <= received_at + _CLOCK_SKEW:
        return received_at
    return at.astimezone(UTC)


def _tenant_of(node: EdgeNode, call_id: str, form: dict[str, str]) -> str:
    """The tenant of a call whose status callback names none (an inbound call's number's callback).

    While its stream is live the call says; Twilio's last callbacks (``completed`` with the
    duration) come after the stream has ended, on any edge node: the node that answered the call
    remembers its tenant; any other asks the number: the tenant that owns the number the caller
    dialled (``To``; ``From`` for a call we placed), which is wrong only if it has moved since.
    """
    call = node.calls.get(call_id)
    if call is not None:
        return call.identity.params.tenant_id
    answered = node.answered.tenant_of(call_id)
    if answered is not None:  # this node answered it: its tenant then, whoever has the number now
        return answered
    ours = form.get("To", "") if form.get("Direction", "inbound") == "inbound" else form.get("From", "")
    route = node.routing.lookup(ours)  # the settings' demo fallback when no agent holds it
    return route.tenant_id if route is not None else "unknown"


_LONG = range(-(2**63), 2**63)
"""What the event log's ``long`` fields hold: a number beyond it would make the whole fact
unencodable (and the status it carries lost), so it is read as absent, like a non-number."""


def _opt_int(value: str | None) -> int | None:
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number is None or number in _LONG else None


def _int(value: str | None) -> int:
    return _opt_int(value) or 0
