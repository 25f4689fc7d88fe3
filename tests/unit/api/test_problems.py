"""Problem documents for infrastructure failures: an outage is a 503 with Retry-After; a bad record is not."""

from __future__ import annotations

from aiokafka.errors import (
    CorruptRecordException,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from api.problems import PROBLEM_JSON, RETRY_AFTER_S, event_log_refused, install_problem_handlers


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/broker-away")
    async def broker_away() -> None:
        raise KafkaConnectionError("connection refused")

    @app.post("/too-large")
    async def too_large() -> None:
        raise MessageSizeTooLargeError("the message is 2000000 bytes")

    @app.post("/corrupt")
    async def corrupt() -> None:
        raise CorruptRecordException("crc mismatch")

    @app.get("/database-away")
    async def database_away() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    return app


def test_a_broker_outage_is_a_503_problem_with_retry_after() -> None:
    response = TestClient(_app()).post("/broker-away")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert "event log" in response.json()["detail"]


def test_a_database_outage_is_a_503_problem_with_retry_after() -> None:
    response = TestClient(_app()).get("/database-away")
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert "database" in response.json()["detail"]


def test_a_record_too_large_for_the_broker_is_a_413_without_retry_after() -> None:
    response = TestClient(_app()).post("/too-large")
    assert response.status_code == 413
    assert "retry-after" not in response.headers  # the same request would fail again
    assert "larger than the event log accepts" in response.json()["detail"]


def test_a_record_the_broker_calls_invalid_is_a_500_without_retry_after() -> None:
    response = TestClient(_app()).post("/corrupt")
    assert response.status_code == 500
    assert "retry-after" not in response.headers


def test_a_partial_create_names_what_was_done_whatever_the_failure() -> None:
    outage = event_log_refused(
        KafkaTimeoutError(), "agent a1 was created; retry later", done="agent a1 was created"
    )
    assert outage.status == 503
    assert outage.detail == "agent a1 was created; retry later"
    refused = event_log_refused(
        MessageSizeTooLargeError(), "unused", done="agent a1 was created", agent_id="a1"
    )
    assert refused.status == 413
    assert refused.detail.startswith("agent a1 was created: ")
    assert refused.extra == {"agent_id": "a1"}
