"""Problem documents for infrastructure outages: 503 with Retry-After, never a bare 500."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from api.problems import PROBLEM_JSON, RETRY_AFTER_S, install_problem_handlers


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/broker-away")
    async def broker_away() -> None:
        raise KafkaConnectionError("connection refused")

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
