"""Every worker's Faust app: our low-latency transport, the group timings, and dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from infra.settings import Settings
from streams import faust_transport


def make_app(
    app_id: str,
    settings: Settings,
    *,
    partitions: int,
    data_dir: Path,
    fetch_max_wait_ms: int,
    **overrides: Any,
) -> faust.App:
    """A Faust app for ``app_id`` on the configured broker; ``overrides`` are faust.App settings.

    ``fetch_max_wait_ms`` is the worker consumer's (one app per process: it is process-wide).
    """
    kafka, streams = settings.kafka, settings.streams
    scheme = faust_transport.register(fetch_max_wait_ms)
    data_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": f"{scheme}://{kafka.bootstrap}",
        "store": "memory://",  # the changelogs are the tables' durable home; recovery is measured
        "datadir": str(data_dir),
        "web_enabled": False,
        "topic_partitions": partitions,
        "topic_replication_factor": kafka.replication_factor,
        "table_standby_replicas": 0,
        "broker_session_timeout": streams.session_timeout_s,
        "broker_heartbeat_interval": streams.heartbeat_interval_s,
        "broker_rebalance_timeout": streams.rebalance_timeout_s,
        "broker_commit_every": 1,
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",  # an input sent before the group first joined
    }
    return faust.App(app_id, **(options | overrides))


class FaustSender:
    """The dead-letter publisher's send_and_wait, over the app's own producer."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> object:
        return await self._app.producer.send_and_wait(topic, key, value, None, None, None)
