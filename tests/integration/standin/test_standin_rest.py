"""`models.generate_content` via the real google-genai client (aiohttp and httpx) against the stand-in."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types

from streams.standin.certs import client_ssl_context
from streams.standin.client import make_genai_client
from streams.standin.server import StandIn, StandInSettings
from streams.standin.summary import HEADER

PROMPT = """Summarise this phone call and pick one outcome.
Outcomes: booked, cancelled, transferred, unresolved
Transcript:
caller: Hi, I want to book a table for two. Tonight if possible.
agent: Sure. I have booked a table at eight for two people.
caller: Great, thanks!
"""

EXPECTED = "\n".join(
    [
        HEADER,
        "caller: Hi, I want to book a table for two.",
        "agent: Sure.",
        "caller: Great, thanks!",
        "Outcome: booked",
    ]
)


async def test_async_generate_content_returns_the_deterministic_summary(genai_client: genai.Client) -> None:
    response = await genai_client.aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert response.text == EXPECTED
    assert response.usage_metadata is not None
    assert response.usage_metadata.total_token_count


async def test_sync_client_reaches_it_too_and_json_mode_gives_json(genai_client: genai.Client) -> None:
    config = types.GenerateContentConfig(response_mime_type="application/json")
    # The sync client blocks its thread; the stand-in runs on this test's event loop.
    response = await asyncio.to_thread(
        genai_client.models.generate_content, model="gemini-2.5-flash", contents=PROMPT, config=config
    )
    assert response.text is not None
    assert json.loads(response.text)["outcome"] == "booked"


async def test_the_v1beta_path_is_served_too(standin: StandIn) -> None:
    beta = make_genai_client(standin.base_url, "k", standin.certs.ca_file, api_version="v1beta")
    response = await beta.aio.models.generate_content(model="m", contents="caller: cancel my booking please")
    assert response.text is not None
    assert response.text.endswith("Outcome: unresolved")


async def test_a_wrong_api_key_is_refused_on_both_paths(standin_cert_dir: Path) -> None:
    async with StandIn(StandInSettings(cert_dir=standin_cert_dir, api_key="right")) as strict:
        wrong = make_genai_client(strict.base_url, "wrong", strict.certs.ca_file)
        with pytest.raises(errors.ClientError) as rest:
            await wrong.aio.models.generate_content(model="m", contents="hi")
        with pytest.raises(errors.APIError) as live:
            async with wrong.aio.live.connect(model="m", config=types.LiveConnectConfig()):
                pass
        right = make_genai_client(strict.base_url, "right", strict.certs.ca_file)
        assert (await right.aio.models.generate_content(model="m", contents="hi")).text
    assert rest.value.code == 403
    assert live.value.code == 1008


async def test_a_client_without_the_ca_cannot_connect(standin: StandIn) -> None:
    untrusting = make_genai_client(standin.base_url, "k", None)
    # The Live path (no retries, unlike REST): the stand-in's CA is not in certifi's bundle.
    with pytest.raises(ssl.SSLCertVerificationError):
        async with untrusting.aio.live.connect(model="m", config=types.LiveConnectConfig()):
            pass


async def test_a_malformed_body_is_a_client_error(standin: StandIn) -> None:
    ctx = client_ssl_context(standin.certs.ca_file)
    async with httpx.AsyncClient(base_url=standin.base_url, verify=ctx) as http:
        reply = await http.post(
            "/v1/models/m:generateContent", content=b"{not json", headers={"x-goog-api-key": "k"}
        )
        no_key = await http.post("/v1/models/m:generateContent", json={"contents": []})
    assert reply.status_code == 400
    assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert no_key.status_code == 403
