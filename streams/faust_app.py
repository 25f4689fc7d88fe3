"""Every worker's Faust app: our low-latency transport, the group timings, and dead letters."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import faust

from infra.settings import Settings
from streams import faust_transport

_NEVER_BY_COUNT = sys.maxsize  # Faust commits inline every N messages; the timer alone commits


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
        # Offsets are committed by Faust's timer, off the message path. Committing after every
        # message (``broker_commit_every=1``) made each input wait for a producer flush and a
        # commit round trip first (ADR 13).
        "broker_commit_interval": streams.commit_interval_s,
        "broker_commit_every": _NEVER_BY_COUNT,
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",  # an input sent before the group first joined
    }
    return faust.App(app_id, **(options | {"Worker": QuietWorker} | overrides))


class QuietWorker(faust.Worker):
    """Faust's worker without its start-up spinner.

    At WARNING, Faust spins a terminal spinner on every log record and, to feed it, sets the
    root logger to DEBUG for good: every ``log.debug`` in aiokafka, Faust and our code then
    builds a record that no handler prints (about 3 % of a busy session worker, measured with
    py-spy). Without the spinner, the root logger keeps the level we ask for.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def run_worker(app: faust.App, settings: Settings) -> None:
    """Run ``app`` as a Faust worker in this process: no web server, our log level; blocks."""
    sys.argv = [sys.argv[0], "worker", "--without-web", "-l", settings.log_level.lower()[:4]]
    app.main()


class FaustSender:
    """The dead-letter publisher's send_and_wait, over the app's own producer."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> object:
        return await self._app.producer.send_and_wait(topic, key, value, None, None, None)
