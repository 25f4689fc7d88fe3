"""The one place that knows how to point the real google-genai client at a (stand-in) endpoint."""

from __future__ import annotations

from pathlib import Path

from google import genai
from google.genai import types

from infra.settings import GeminiSettings
from streams.standin.certs import client_ssl_context


def make_genai_client(
    base_url: str | None, api_key: str, ca_file: Path | str | None, *, api_version: str | None = None
) -> genai.Client:
    """A google-genai client for `base_url` (None: Google's own endpoint).

    With `ca_file` the same TLS context is given to every transport the SDK uses: the Live
    WebSocket and aiohttp read `async_client_args["ssl"]`, httpx (sync and async) reads
    `client_args["verify"]`. Without it the SDK's defaults (certifi) apply. The Live socket
    never offers per-message deflate.
    """
    options = types.HttpOptions(base_url=base_url, api_version=api_version)
    # The SDK hands each async transport only the arguments its signature takes, so
    # `compression` reaches the Live WebSocket alone. Deflating 20 ms of base64 audio per
    # message costs CPU on every frame and saves almost nothing on noisy PCM.
    options.async_client_args = {"compression": None}
    if ca_file is not None:
        ctx = client_ssl_context(ca_file)
        options.client_args = {"verify": ctx}
        options.async_client_args |= {"ssl": ctx, "verify": ctx}
    return genai.Client(api_key=api_key, http_options=options)


def genai_client_for(gemini: GeminiSettings) -> genai.Client:
    """The client the settings name: Google's endpoint, or the offline stand-in with its CA."""
    api_key = gemini.api_key.get_secret_value() or "offline"
    return make_genai_client(gemini.base_url, api_key, gemini.ca_file, api_version=gemini.api_version)
