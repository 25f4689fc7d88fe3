"""RFC 9457 problem details: one error shape for every failure the API reports."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from infra.db import is_database_outage
from infra.kafka import TOO_LARGE_ERRORS, is_transient
from schemas.codec import EncodeError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 5
"""What a 503 for an unavailable broker or database tells the client to wait."""


class ProblemError(Exception):
    """Raise anywhere below a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extra = extra


def unavailable(detail: str, **extra: Any) -> ProblemError:
    """A 503 that tells the client when to try again (the broker or the database is away)."""
    return ProblemError(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)}, **extra)


def event_log_refused(
    err: KafkaError, unavailable_detail: str, *, done: str = "", **extra: Any
) -> ProblemError:
    """The problem for a failed write to the event log: a 503 when the broker is away (a retry
    may succeed), else the record's own fault, where a retry never helps (no Retry-After).
    `done` says what the request did complete before the failed write, if anything."""
    if is_transient(err):
        return unavailable(unavailable_detail, **extra)
    prefix = f"{done}: " if done else ""
    if isinstance(err, TOO_LARGE_ERRORS):
        return ProblemError(
            413, f"{prefix}the request makes an event larger than the event log accepts; send less", **extra
        )
    return ProblemError(500, f"{prefix}the event log refused the request's event as invalid", **extra)


def _respond(exc: ProblemError) -> JSONResponse:
    return problem_response(exc.status, exc.detail, title=exc.title, headers=exc.headers, **exc.extra)


def problem_response(
    status: int, detail: str, *, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    } | extra
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return _respond(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # The last line of defence: a value the database cannot hold is bad input, not a server fault.
        log.warning("refused a value PostgreSQL cannot hold: %s", exc.orig)
        return problem_response(422, "a value in the request is out of range or not storable")

    @app.exception_handler(EncodeError)
    async def _unencodable(request: Request, exc: EncodeError) -> JSONResponse:
        # The guard in front refuses the known cases; any other value the event's schema cannot
        # carry is still bad input. Raised before the record is sent, so nothing was written.
        log.warning("refused a value the event log cannot encode: %s", exc)
        return problem_response(422, f"a value in the request cannot be written to the event log: {exc}")

    @app.exception_handler(KafkaError)
    async def _broker(request: Request, exc: KafkaError) -> JSONResponse:
        # The broker is away (a transient outage, not a bad request), or it refused the record.
        log.error("event log write failed during %s %s: %r", request.method, request.url.path, exc)
        return _respond(
            event_log_refused(
                exc,
                "the event log (Kafka) is unavailable, so the request may not have been completed; "
                "check before retrying a create, or retry shortly",
            )
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if not is_database_outage(exc):  # e.g. a statement timeout: the server's fault, not an outage
            log.error("database refused %s %s: %s", request.method, request.url.path, exc.orig)
            return problem_response(500, "the database could not complete the request")
        log.error("database unavailable during %s %s: %s", request.method, request.url.path, exc.orig)
        return _respond(unavailable("the database is unavailable; retry shortly"))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]}
            for err in exc.errors()
        ]
        return problem_response(422, "the request is invalid", errors=errors)


def field_errors(errors: list[tuple[str, str]]) -> ProblemError:
    """A 422 naming each invalid field."""
    return ProblemError(
        422,
        "the request is invalid",
        errors=[{"field": field, "message": message} for field, message in errors],
    )
