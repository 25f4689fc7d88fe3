"""Our Faust workers keep the log level they are given (Faust's spinner would force DEBUG)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings
from streams.faust_app import QuietWorker, make_app


@pytest.fixture
def root_level() -> Iterator[None]:
    level, handlers = logging.root.level, list(logging.root.handlers)
    yield
    logging.root.setLevel(level)
    logging.root.handlers[:] = handlers


def test_a_worker_at_warning_does_not_build_debug_records(tmp_path: Path, root_level: None) -> None:
    settings = Settings(env="test", data_dir=tmp_path)
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"bootstrap": "127.0.0.1:1"})}
    )
    app = make_app("quiet-test", settings, partitions=1, data_dir=tmp_path / "faust", fetch_max_wait_ms=10)
    worker_class: object = app.conf.Worker
    assert worker_class is QuietWorker
    worker = QuietWorker(app, loglevel="warn", quiet=True, redirect_stdouts=False)
    worker._setup_logging()  # what the worker does first when it starts
    assert logging.root.level == logging.WARNING
    assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
