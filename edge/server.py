"""Run an edge node in this process: Kafka producer, routing feed, public app and audio bridge."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Iterator

import uvicorn
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
from websockets.asyncio.server import Server

from edge.app import create_app
from edge.bridge_server import start_bridge_server
from edge.media_protocol import MediaStreamProtocol
from edge.metrics import EdgeMetrics
from edge.node import EdgeNode
from edge.publisher import KafkaFactPublisher
from edge.routing import RoutingFeed, RoutingTable
from edge.telephony import Telephony, TwilioTelephony
from infra.kafka import make_producer
from infra.settings import Settings
from schemas.codec import Codec

log = logging.getLogger(__name__)
_GC_YOUNG_THRESHOLD = 20_000


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the edge drains on SIGTERM itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EdgeServer:
    """Start with ``await start()``; ``await drain()`` then ``await stop()`` (or ``async with``)."""

    def __init__(self, settings: Settings, *, telephony: Telephony | None = None, codec: Codec | None = None):
        self.settings = settings
        self.metrics = EdgeMetrics()
        self._codec = codec or Codec.single_object()
        self._producer = make_producer(settings.kafka)
        self.publisher = KafkaFactPublisher(self._producer, self._codec, self.metrics)
        self.routing = RoutingTable()
        self._feed = RoutingFeed(settings.kafka, self.routing, self._codec)
        self.node = EdgeNode(
            settings,
            publisher=self.publisher,
            telephony=telephony or TwilioTelephony(settings.twilio),
            routing=self.routing,
            metrics=self.metrics,
            refresh_routes=self._feed.refresh,
        )
        self._http: _QuietServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._bridge: Server | None = None

    async def start(self) -> None:
        edge = self.settings.edge
        # The resampler's matrix products are tiny: a second OpenBLAS thread only spins on the
        # event loop's core (measured: half the edge's CPU and 30-125 ms p99 stalls).
        threadpool_limits(limits=1, user_api="blas")
        await self._producer.start()
        self.publisher.start()
        await self._feed.start()
        self._bridge = await start_bridge_server(self.node, edge.bridge_host, edge.bridge_port)
        app = create_app(
            self.settings, publisher=self.publisher, telephony=self.node.telephony, node=self.node
        )
        config = uvicorn.Config(
            app,
            host=edge.host,
            port=edge.port,
            log_level="warning",
            lifespan="off",
            ws_max_size=edge.ws_max_bytes,
            # Upgrades go to MediaStreamProtocol: /twilio/media frames straight to the media loop.
            ws=MediaStreamProtocol.bound(self.node, app.state.signatures),
            ws_per_message_deflate=False,
            ws_ping_interval=edge.ws_ping_interval_s,
            ws_ping_timeout=edge.ws_ping_interval_s,
            timeout_graceful_shutdown=int(edge.drain_deadline_s) + 5,
        )
        self._http = _QuietServer(config)
        self._http_task = asyncio.create_task(self._http.serve(), name="edge-http")
        while not self._http.started:
            if self._http_task.done():
                await self._http_task  # surfaces the bind error
                raise RuntimeError("edge HTTP server stopped during start-up")
            await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(self._feed.caught_up.wait(), 30)
        except TimeoutError:
            log.warning("routing feed not caught up after 30s; serving with what it has")
        self.node.ready = True
        # Start-up objects (settings, app, codecs, filter tables) never die: keep them out of
        # the collector's generations so a full collection is not a media-path pause.
        gc.freeze()
        # Each frame allocates a few short-lived containers: young collections every 700 of
        # them ran ~40 times a second at 200 calls. Rarer young collections cost no more each
        # (they walk the survivors, and nearly nothing survives), so most of that work goes.
        gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        log.info(
            "edge %s up: http %s:%d, bridge %s:%d",
            edge.edge_id,
            edge.host,
            edge.port,
            edge.bridge_host,
            edge.bridge_port,
        )

    async def drain(self, deadline_s: float | None = None) -> None:
        """Stop taking calls, let live ones finish until the deadline, then end them (edge_shutdown)."""
        node = self.node
        node.draining = True
        deadline = self.settings.edge.drain_deadline_s if deadline_s is None else deadline_s
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        if node.calls or node.admission.reserved:
            log.info(
                "draining %d calls (and %d answered, still to connect) for up to %.0fs",
                len(node.calls),
                node.admission.reserved,
                deadline,
            )
            # Polled: a reservation can also end by expiring, which no event signals (one drain
            # per process, so the cost is nothing).
            while (node.calls or node.admission.reserved) and loop.time() < end:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        for call in list(node.calls.values()):
            await call.end("edge_shutdown")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(node.drained.wait(), 5.0)

    async def stop(self) -> None:
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await asyncio.gather(self._http_task, return_exceptions=True)
        if self._bridge is not None:
            self._bridge.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._bridge.wait_closed(), 5.0)
        await self.node.watchdog.close()
        self.node.playback_clock.close()
        await self._feed.stop()
        await self.publisher.close()
        await self._producer.stop()

    async def __aenter__(self) -> EdgeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain(deadline_s=0)
        await self.stop()
