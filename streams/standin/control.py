"""The stand-in's plain-HTTP control endpoint: scripts per call, sessions, goAway and failures."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streams.standin.script import parse_script

if TYPE_CHECKING:
    from streams.standin.server import StandIn


def control_app(standin: StandIn) -> Starlette:
    """Routes (all JSON):

    - `PUT /scripts/{key}` a script body; `GET`/`DELETE /scripts/{key}`
    - `GET /sessions[?key=K]` live and past sessions with transcript and setup
    - `GET /timings[?key=K]` monotonic audio in/out times per session (with `timings` on)
    - `POST /go-away[/{key}]` `{"time_left_s": 5}`: goAway now, close after the time left
    - `POST /fail[/{key}]` `{"code": 1011, "reason": "..."}`: close connections with that code
    - `POST /inject[/{key}]` `{"raw": "..."}`: send a frame verbatim (malformed-message tests)
    """

    async def put_script(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            script = parse_script(body)
        except ValueError as exc:  # json errors and ScriptError alike
            return JSONResponse({"error": str(exc)}, status_code=422)
        standin.put_script(request.path_params["key"], script)
        return JSONResponse({"key": request.path_params["key"], "turns": len(script.turns)})

    async def get_script(request: Request) -> Response:
        script = standin.registry.scripts.get(request.path_params["key"])
        if script is None:
            return JSONResponse({"error": "no such script"}, status_code=404)
        return JSONResponse({"turns": len(script.turns), "greeting": script.greeting})

    async def delete_script(request: Request) -> Response:
        standin.registry.scripts.pop(request.path_params["key"], None)
        return Response(status_code=204)

    async def sessions(request: Request) -> Response:
        return JSONResponse(standin.sessions(request.query_params.get("key")))

    async def timings(request: Request) -> Response:
        return JSONResponse(standin.timings(request.query_params.get("key")))

    async def go_away(request: Request) -> Response:
        body = await _body(request)
        time_left = body.get("time_left_s", 5.0)
        if not isinstance(time_left, int | float) or time_left < 0:
            return JSONResponse({"error": "time_left_s must be a number >= 0"}, status_code=422)
        count = await standin.go_away(request.path_params.get("key"), time_left_s=float(time_left))
        return JSONResponse({"connections": count})

    async def fail(request: Request) -> Response:
        body = await _body(request)
        code, reason = (
            body.get("code", 1011),
            body.get("reason", "offline Gemini stand-in: failure on demand"),
        )
        if not isinstance(code, int) or not 1000 <= code <= 4999 or not isinstance(reason, str):
            return JSONResponse({"error": "code must be a close code, reason a string"}, status_code=422)
        count = await standin.fail(request.path_params.get("key"), code=code, reason=reason)
        return JSONResponse({"connections": count})

    async def inject(request: Request) -> Response:
        raw = (await _body(request)).get("raw")
        if not isinstance(raw, str):
            return JSONResponse({"error": "raw must be a string"}, status_code=422)
        count = await standin.inject(request.path_params.get("key"), raw)
        return JSONResponse({"connections": count})

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "what": "offline Gemini stand-in"})

    routes = [
        Route("/health", health),
        Route("/scripts/{key}", put_script, methods=["PUT"]),
        Route("/scripts/{key}", get_script, methods=["GET"]),
        Route("/scripts/{key}", delete_script, methods=["DELETE"]),
        Route("/sessions", sessions),
        Route("/timings", timings),
    ]
    for path, endpoint in (("/go-away", go_away), ("/fail", fail), ("/inject", inject)):
        routes += [
            Route(path, endpoint, methods=["POST"]),
            Route(path + "/{key}", endpoint, methods=["POST"]),
        ]
    return Starlette(routes=routes, exception_handlers={_BodyError: _bad_body})


class _BodyError(ValueError):
    pass


async def _bad_body(_request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=422)


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object body (an empty body means defaults); raises _BodyError otherwise."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise _BodyError(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _BodyError("body must be a JSON object")
    return body
