"""The edge node's shared state: live calls, their bridge tokens, the stream limit and draining."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from edge.admission import Admission
from edge.metrics import EdgeMetrics
from edge.playback_clock import PlaybackClock
from edge.publisher import FactPublisher
from edge.routing import Route, RoutingTable
from edge.session import SessionConfig
from edge.telephony import Telephony
from edge.watchdog import Watchdog
from infra.settings import Settings
from schemas import bridge

if TYPE_CHECKING:
    from edge.call import LiveCall

ANSWER_HOLD_S = 30.0
"""How long an answered call's slot waits for its media socket (Twilio opens it within a second)."""

_CALL_NAMESPACE = uuid.UUID("0b7d3f5e-7a57-5c0e-9f55-9d8c1a1e2b44")


def call_id_for(call_sid: str) -> str:
    """Inbound calls get an id derived from Twilio's CallSid, so webhook retries agree on it."""
    return str(uuid.uuid5(_CALL_NAMESPACE, f"twilio:{call_sid}"))


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeGrant:
    """A call's bridge token and when it stops being accepted."""

    token: str
    expires_at: datetime


class TokenCheck:
    """Results of presenting a token; the values are the bridge close codes."""

    OK = 0
    BAD = bridge.CLOSE_BAD_TOKEN
    EXPIRED = bridge.CLOSE_TOKEN_EXPIRED
    GONE = bridge.CLOSE_CALL_GONE
    ENDED = bridge.CLOSE_CALL_ENDED
    """The right token of a call that has ended here: a worker late to learn it, not an attack."""


SPENT_TOKENS_KEPT = 4096
"""Tokens of ended calls remembered, so that a worker reconnecting late is told the call ended
instead of being reported as a security event (minutes of call ends at a busy node)."""


class EdgeNode:
    """Everything the routes, the media socket and the bridge server share (no I/O of its own)."""

    def __init__(
        self,
        settings: Settings,
        *,
        publisher: FactPublisher,
        telephony: Telephony,
        routing: RoutingTable | None = None,
        metrics: EdgeMetrics | None = None,
        refresh_routes: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.telephony = telephony
        self.metrics = metrics or EdgeMetrics()
        fallback = None
        if settings.edge.demo_agent_id:
            fallback = Route(
                tenant_id=settings.edge.demo_tenant_id,
                agent_id=settings.edge.demo_agent_id,
                agent_version=settings.edge.demo_agent_version,
                record_calls=settings.edge.demo_record_calls,
            )
        self.routing = routing if routing is not None else RoutingTable(fallback)
        if routing is not None and routing.fallback is None:
            routing.fallback = fallback
        self.refresh_routes = refresh_routes or _nothing_to_refresh
        """Read the agent events up to the log's end now (before refusing an unknown number)."""
        self.calls: dict[str, LiveCall] = {}
        self.answered = AnsweredCalls()
        """The tenant of each inbound call this node answered, for its status callbacks."""
        self.admission = Admission(settings.edge.max_streams, hold_s=ANSWER_HOLD_S)
        """The stream limit, with a slot held for each answered call until its socket arrives."""
        self.unstarted = 0
        """Media sockets let in whose ``start`` has not come yet: each holds a slot meanwhile."""
        self._grants: dict[str, BridgeGrant] = {}
        self._spent: OrderedDict[str, str] = OrderedDict()
        """Tokens of the latest ended calls, oldest first (see SPENT_TOKENS_KEPT)."""
        self.draining = False
        self.ready = False
        self.drained = asyncio.Event()
        self.drained.set()  # no calls yet
        edge = settings.edge
        self.playback_clock = PlaybackClock()
        """Paces every call's agent audio (one timer for the node, not one per call)."""
        self.watchdog = Watchdog(min(0.25, edge.idle_timeout_s / 4, edge.twilio_send_timeout_s / 4))
        """Idle and stuck-client deadlines of the media sockets."""
        self.session_config = SessionConfig(
            vad_aggressiveness=edge.vad_aggressiveness,
            vad_onset_frames=edge.vad_onset_frames,
            vad_hangover_frames=edge.vad_hangover_frames,
            barge_in_min_speech_ms=edge.barge_in_min_speech_ms,
            caller_buffer_frames=int(edge.caller_buffer_s * 1000) // 20,
        )

    @property
    def edge_id(self) -> str:
        return self.settings.edge.edge_id

    def admit_call(self) -> bool:
        """Voice webhook: True answers with a stream and holds its slot; False: refuse, spoken."""
        return not self.draining and self.admission.admit_call(len(self.calls))

    def admit_stream(self) -> bool:
        """Media socket upgrade: an answered call's held slot, or a free one.

        While draining, only calls answered before the drain began get in: to their callers they
        are calls in progress, and the drain waits for them like for the others.
        """
        if self.draining:
            admitted = self.admission.reserved > self.unstarted
        else:
            admitted = self.admission.admit_stream(len(self.calls), self.unstarted)
        if admitted:
            self.unstarted += 1  # until its `start` registers the call, or the socket goes
        return admitted

    def stream_settled(self) -> None:
        """An admitted socket started its call or went away: it no longer waits for a slot."""
        self.unstarted = max(0, self.unstarted - 1)

    def bridge_url(self, call_id: str) -> str:
        edge = self.settings.edge
        base = edge.bridge_public_url or f"ws://{edge.bridge_host}:{edge.bridge_port}"
        return base.rstrip("/") + bridge.PATH_PREFIX + call_id

    def grant(self, call_id: str) -> BridgeGrant:
        """A fresh unguessable token bound to this call only."""
        ttl = timedelta(seconds=self.settings.edge.bridge_token_ttl_s)
        grant = BridgeGrant(token=secrets.token_urlsafe(32), expires_at=datetime.now(UTC) + ttl)
        self._grants[call_id] = grant
        return grant

    def check_token(self, call_id: str, token: str | None) -> int:
        """Whether ``token`` opens the bridge of ``call_id`` now (a TokenCheck value)."""
        grant = self._grants.get(call_id)
        if grant is None or call_id not in self.calls:
            spent = self._spent.get(call_id)
            if spent is not None and token and hmac.compare_digest(spent.encode(), token.encode()):
                return TokenCheck.ENDED
            return TokenCheck.GONE
        if not token or not hmac.compare_digest(grant.token.encode(), token.encode()):
            return TokenCheck.BAD
        if datetime.now(UTC) >= grant.expires_at:
            return TokenCheck.EXPIRED
        return TokenCheck.OK

    def register(self, call_id: str, call: LiveCall) -> None:
        self.calls[call_id] = call
        self.admission.claim()  # counted in `calls` from now on
        self.drained.clear()

    def unregister(self, call_id: str) -> None:
        """The call is over: its token is spent for good, and it no longer counts."""
        self.spend_token(call_id)
        self.calls.pop(call_id, None)
        if not self.calls:
            self.drained.set()

    def spend_token(self, call_id: str) -> None:
        """The call is ending: its worker may no longer connect (it is told the call ended)."""
        grant = self._grants.pop(call_id, None)
        if grant is not None:
            self._spent.pop(call_id, None)  # a call id ending again goes to the back of the line
            self._spent[call_id] = grant.token
            while len(self._spent) > SPENT_TOKENS_KEPT:
                self._spent.popitem(last=False)


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


async def _nothing_to_refresh() -> bool:
    return False


class AnsweredCalls:
    """The tenants of the inbound calls this node answered lately (bounded, oldest forgotten).

    Twilio's last status callback of an inbound call (``completed``, with the duration) names no
    tenant and comes after the stream has ended: the call's own tenant, remembered here when it
    was answered, is still right when its number has since moved to another tenant.
    """

    def __init__(self, capacity: int = 50_000) -> None:
        self._tenants: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    def remember(self, call_id: str, tenant_id: str) -> None:
        self._tenants[call_id] = tenant_id
        self._tenants.move_to_end(call_id)
        while len(self._tenants) > self._capacity:
            self._tenants.popitem(last=False)

    def tenant_of(self, call_id: str) -> str | None:
        return self._tenants.get(call_id)
