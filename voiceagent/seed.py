"""Seeds the dev platform with a demo agent, through the public API like any operator would."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

DEMO_NAME = "demo"
DEMO_NUMBER = "+15550100000"
DEMO_TRANSFER_NUMBER = "+15550123456"
"""Where the demo agent may transfer calls (`call simulate --transfer-to`); fictional, like DEMO_NUMBER."""
DEMO_CONFIG: dict[str, Any] = {
    "system_prompt": "You are the friendly demo agent of voiceagent. Keep answers short.",
    "greeting": "Hello! You are talking to the voiceagent demo.",
    "phone_numbers": [DEMO_NUMBER],
    "transfer_numbers": [DEMO_TRANSFER_NUMBER],
    "silence_timeout_s": 30,
    "max_duration_s": 600,
    "record_calls": True,
}


class SeedError(RuntimeError):
    """The API did not come up or refused the demo agent; the message says which."""


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


_LOGS = Path(".voiceagent/logs")  # the default data dir's


def wait_for_api(client: httpx.Client, api_key: str, timeout_s: float, logs_dir: Path = _LOGS) -> None:
    failure = _poll(client, api_key, "/api/agents", params={"limit": 1}, timeout_s=timeout_s, interval_s=0.5)
    if failure is not None:
        raise SeedError(
            f"the API did not answer within {timeout_s:g}s ({failure}); see {logs_dir / 'api.log'}"
        )


def _poll(
    client: httpx.Client,
    api_key: str,
    path: str,
    *,
    timeout_s: float,
    interval_s: float,
    params: dict[str, Any] | None = None,
) -> str | None:
    """GET path until it answers 200: None then, or the last failure once timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = client.get(path, params=params, headers=_headers(api_key))
            if response.status_code == 200:
                return None
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as err:
            last = str(err)
        time.sleep(interval_s)
    return last


def find_agent(client: httpx.Client, api_key: str, name_or_id: str) -> dict[str, Any] | None:
    """An agent by id, or by name (newest first), visible to this key."""
    direct = client.get(f"/api/agents/{name_or_id}", headers=_headers(api_key))
    if direct.status_code == 200:
        found: dict[str, Any] = direct.json()
        return found
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/agents", params=params, headers=_headers(api_key)).json()
        for agent in page.get("items", []):
            if agent.get("name") == name_or_id and agent.get("status") != "archived":
                full = client.get(f"/api/agents/{agent['agent_id']}", headers=_headers(api_key))
                return dict(full.json()) if full.status_code == 200 else dict(agent)
        cursor = page.get("next_cursor")
        if not cursor:
            return None


def seed_demo_agent(
    api_url: str,
    api_key: str,
    *,
    timeout_s: float = 60,
    transport: httpx.BaseTransport | None = None,
    logs_dir: Path = _LOGS,
) -> str:
    """The demo agent's id, creating it (with a published version) the first time; returns once
    the API shows it. ``transport`` is for tests (an in-process API); ``logs_dir`` is where the
    services' logs are, for the error messages."""
    with httpx.Client(base_url=api_url, timeout=10, transport=transport) as client:
        wait_for_api(client, api_key, timeout_s, logs_dir)
        existing = find_agent(client, api_key, DEMO_NAME)
        if existing is not None:
            return str(existing["agent_id"])
        response = client.post(
            "/api/agents", json={"name": DEMO_NAME, "config": DEMO_CONFIG}, headers=_headers(api_key)
        )
        if response.status_code not in (200, 201, 202):
            raise SeedError(
                f"creating the demo agent failed: HTTP {response.status_code} {response.text[:300]}"
            )
        if response.status_code == 202 or not response.content:
            agent_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        else:
            agent_id = str(response.json()["agent_id"])
        # Accepted is not visible: the read model has it once the projections have caught up,
        # and `dev` must not say "try a call" before `call simulate --agent demo` can find it.
        wait_until_visible(client, api_key, agent_id, timeout_s, logs_dir)
        return agent_id


def wait_until_visible(
    client: httpx.Client, api_key: str, agent_id: str, timeout_s: float, logs_dir: Path = _LOGS
) -> None:
    """Return once the API shows the agent (its read model has caught up); SeedError if it never does."""
    failure = _poll(client, api_key, f"/api/agents/{agent_id}", timeout_s=timeout_s, interval_s=0.2)
    if failure is not None:
        raise SeedError(
            f"the demo agent {agent_id} was accepted but the API did not show it within {timeout_s:g}s "
            f"({failure}); see {logs_dir / 'projections.log'}"
        )
