"""The stand-in's REST side: `models/{model}:generateContent` answered with a deterministic summary."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from streams.standin.summary import summarise
from streams.standin.wire import normalise_keys

_log = logging.getLogger("streams.standin")
API_VERSIONS = ("v1", "v1beta", "v1alpha")


def google_error(status: int, code: str, message: str) -> JSONResponse:
    """An error body shaped like Google's, which google-genai turns into ClientError/ServerError."""
    return JSONResponse({"error": {"code": status, "message": message, "status": code}}, status_code=status)


def prompt_text(body: dict[str, Any]) -> str:
    """All text parts of the request's `contents`, in order (system instruction excluded)."""
    contents = body.get("contents") or []
    texts: list[str] = []
    for content in contents if isinstance(contents, list) else [contents]:
        parts = content.get("parts", []) if isinstance(content, dict) else []
        texts.extend(str(p["text"]) for p in parts if isinstance(p, dict) and "text" in p)
    return "\n".join(texts)


def generate_content_response(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The full `GenerateContentResponse` JSON for a (normalised) request body."""
    prompt = prompt_text(body)
    summary = summarise(prompt)
    config = body.get("generationConfig") or {}
    if str(config.get("responseMimeType", "")).startswith("application/json"):
        text = json.dumps(summary.as_json())
    else:
        text = summary.as_text()
    prompt_tokens, answer_tokens = len(prompt.split()), len(text.split())
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt_tokens + answer_tokens,
        },
        "modelVersion": f"{model} (offline stand-in)",
    }


def rest_routes(api_key_ok: Any) -> list[Route]:
    """Routes for `POST /{version}/models/{model}:generateContent` (and the streaming variant)."""

    async def generate(request: Request) -> Response:
        version, model = request.path_params["version"], request.path_params["model"]
        if version not in API_VERSIONS:
            return google_error(404, "NOT_FOUND", f"unknown API version {version}")
        if not api_key_ok(request.headers.get("x-goog-api-key")):
            return google_error(403, "PERMISSION_DENIED", "API key not valid (offline Gemini stand-in)")
        try:
            body = normalise_keys(json.loads(await request.body()))
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "request body is not JSON")
        if not isinstance(body, dict):
            return google_error(400, "INVALID_ARGUMENT", "request body must be a JSON object")
        answer = generate_content_response(body, model)
        _log.info("offline Gemini stand-in answered generateContent for %s", model)
        if request.url.path.endswith(":streamGenerateContent"):
            return StreamingResponse(_sse(answer), media_type="text/event-stream")
        return JSONResponse(answer)

    return [
        Route("/{version}/models/{model}:generateContent", generate, methods=["POST"]),
        Route("/{version}/models/{model}:streamGenerateContent", generate, methods=["POST"]),
    ]


async def _sse(answer: dict[str, Any]) -> Any:
    yield f"data: {json.dumps(answer)}\n\n"
